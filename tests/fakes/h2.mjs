/*
 * h2.mjs — a loopback fake of an OpenAI-like upstream that speaks HTTP/2,
 * for tests only: it shows how cn2-vault's libcurl reaches an upstream
 * (which HTTP version, on how many connections, how many streams at once)
 * and which credential arrived.
 *
 *   node tests/fakes/h2.mjs --port P --cert tls.cert --key tls.key --api-key key.txt
 *
 * TLS with the test's own certificate and ALPN "h2" (HTTP/1.1 is still
 * accepted, so a client that does not negotiate h2 is served and shows up
 * as version "1.1" in the stats instead of failing to connect).
 *
 *   POST /v1/chat/completions  Authorization must be exactly "Bearer <key>"
 *        (else 401 with an OpenAI error object). {"stream": true} answers
 *        text/event-stream: `events` chat.completion.chunk events
 *        ("tok0", "tok1", …) interval_ms apart, a last chunk with
 *        finish_reason "stop", then "data: [DONE]". Otherwise a
 *        chat.completion whose content is "served over HTTP/<version>".
 *        Either answer waits delay_ms first.
 *   GET  /v1/models            the model list, same authentication.
 *   POST /_fake/control        {"delay_ms", "events", "interval_ms"}, or
 *                              {"reset": true} for the defaults and empty stats.
 *   GET  /_fake/stats          {"requests", "sessions" (connections that
 *        carried a provider request), "tls_connections" (all accepted),
 *        "max_concurrent" (most provider requests in flight on one
 *        connection), "versions" {"2.0": n, …}, "by_route", "auth_ok"
 *        (requests that carried exactly the key), "last" (the last 64
 *        requests: version, session, method, path, auth, headers)}.
 *
 * Header values are recorded as received except Authorization, which is
 * recorded as "<the key>" or "<not the key>": the fake never repeats the
 * key. It never logs a header or a body. Listens on 127.0.0.1 only, prints
 * "listening <port>" when up, and stops on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import http2 from 'node:http2';
import { readBody } from './body.mjs';

const args = process.argv.slice(2);
function opt(name) {
	const i = args.indexOf(`--${name}`);
	return i >= 0 ? args[i + 1] : undefined;
}
const port = Number(opt('port') ?? 0);
const apiKey = readFileSync(opt('api-key'), 'utf8').trim();

const defaults = { delay_ms: 0, events: 5, interval_ms: 20 };
const control = { ...defaults };
let stats, seen;
function statsReset() {
	seen = new Set();
	stats = {
		requests: 0, sessions: 0, tls_connections: 0, max_concurrent: 0,
		versions: {}, by_route: {}, auth_ok: 0, last: [],
	};
}
statsReset();

/* Connections: an h2 session, or an HTTP/1.1 socket, numbered when first used. */
const connId = new WeakMap();
const inFlight = new Map(); /* id → provider requests in flight */
let nextConn = 0;

function connOf(req) {
	const key = req.httpVersion === '2.0' ? req.stream.session : req.socket;
	let id = connId.get(key);
	if (id === undefined) {
		id = ++nextConn;
		connId.set(key, id);
	}
	seen.add(id);
	stats.sessions = seen.size;
	return id;
}

function reply(res, status, body, headers = {}) {
	if (res.destroyed || res.writableEnded)
		return;
	res.writeHead(status, { 'content-type': 'application/json', ...headers });
	res.end(JSON.stringify(body));
}

/*
 * "key" when exactly one credential header carried exactly the key — an
 * Authorization "Bearer <key>" or, as Anthropic-like providers take it, an
 * x-api-key "<key>" — else "none" or "other".
 */
const AUTH_HEADERS = { authorization: 'Bearer ', 'x-api-key': '' };
function authOf(req) {
	const got = [];
	for (let i = 0; i < req.rawHeaders.length; i += 2) {
		const name = req.rawHeaders[i].toLowerCase();
		if (name in AUTH_HEADERS)
			got.push([Buffer.from(req.rawHeaders[i + 1]), Buffer.from(AUTH_HEADERS[name] + apiKey)]);
	}
	if (got.length === 0)
		return 'none';
	const ok = got.length === 1 && got[0][0].length === got[0][1].length && timingSafeEqual(got[0][0], got[0][1]);
	return ok ? 'key' : 'other';
}

function headersOf(req) {
	const out = [];
	for (let i = 0; i < req.rawHeaders.length; i += 2) {
		const name = req.rawHeaders[i].toLowerCase();
		let value = req.rawHeaders[i + 1];
		if (name in AUTH_HEADERS)
			value = authOf(req) === 'key' ? '<the key>' : '<not the key>';
		out.push([name, value]);
	}
	return out;
}

/* Count a provider request on its connection until its response is closed. */
function track(req, res) {
	const id = connOf(req);
	const route = `${req.method} ${new URL(req.url, 'https://fake').pathname}`;
	const auth = authOf(req);
	const n = (inFlight.get(id) ?? 0) + 1;
	let closed = false;

	inFlight.set(id, n);
	stats.max_concurrent = Math.max(stats.max_concurrent, n);
	stats.requests++;
	stats.versions[req.httpVersion] = (stats.versions[req.httpVersion] ?? 0) + 1;
	stats.by_route[route] = (stats.by_route[route] ?? 0) + 1;
	stats.auth_ok += auth === 'key' ? 1 : 0;
	stats.last.push({
		version: req.httpVersion, session: id, method: req.method, path: req.url, auth,
		headers: headersOf(req),
	});
	if (stats.last.length > 64)
		stats.last.shift();
	res.on('close', () => {
		if (!closed)
			inFlight.set(id, inFlight.get(id) - 1);
		closed = true;
	});
	return auth;
}

function chunk(i, delta, finish) {
	return `data: ${JSON.stringify({
		id: 'chatcmpl-h2', object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000),
		model: 'h2-1', choices: [{ index: 0, delta, finish_reason: finish }],
	})}\n\n`;
}

function sse(res) {
	const n = control.events, every = control.interval_ms;
	let i = 0;
	res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
	const next = () => {
		if (res.destroyed)
			return;
		if (i < n) {
			res.write(chunk(i, { content: `tok${i} ` }, null));
			i++;
			setTimeout(next, every);
			return;
		}
		res.write(chunk(i, {}, 'stop'));
		res.end('data: [DONE]\n\n');
	};
	next();
}

function completion(req, res, j) {
	reply(res, 200, {
		id: `chatcmpl-h2-${stats.requests}`, object: 'chat.completion',
		created: Math.floor(Date.now() / 1000), model: j.model ?? 'h2-1',
		choices: [{
			index: 0, finish_reason: 'stop',
			message: { role: 'assistant', content: `served over HTTP/${req.httpVersion}` },
		}],
		usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
	});
}

function provider(req, res, path, body) {
	if (track(req, res) !== 'key')
		return reply(res, 401, { error: {
			message: 'Incorrect API key provided.', type: 'invalid_request_error',
			param: null, code: 'invalid_api_key',
		} });
	if (req.method === 'GET' && path === '/v1/models')
		return reply(res, 200, { object: 'list', data: [{ id: 'h2-1', object: 'model', owned_by: 'fake' }] });
	if (req.method !== 'POST' || path !== '/v1/chat/completions')
		return reply(res, 404, { error: { message: 'Unknown request URL', type: 'invalid_request_error' } });
	let j;
	try {
		j = JSON.parse(body);
	} catch {
		return reply(res, 400, { error: { message: 'We could not parse the JSON body.', type: 'invalid_request_error' } });
	}
	setTimeout(() => (j.stream === true ? sse(res) : completion(req, res, j)), control.delay_ms);
}

function serve(req, res) {
	readBody(req, (body) => {
		const path = new URL(req.url, 'https://fake').pathname;
		if (path === '/_fake/control') {
			let j;
			try {
				j = JSON.parse(body || '{}');
			} catch {
				return reply(res, 400, { error: 'bad json' });
			}
			if (j.reset === true) {
				Object.assign(control, defaults);
				statsReset();
				return reply(res, 200, control);
			}
			for (const k of Object.keys(defaults))
				if (Number.isInteger(j[k]) && j[k] >= 0)
					control[k] = j[k];
			return reply(res, 200, control);
		}
		if (path === '/_fake/stats')
			return reply(res, 200, stats);
		provider(req, res, path, body);
	});
}

const server = http2.createSecureServer({
	cert: readFileSync(opt('cert')), key: readFileSync(opt('key')), allowHTTP1: true,
	settings: { maxConcurrentStreams: 100 },
}, serve);
const sessions = new Set();
server.on('secureConnection', () => stats.tls_connections++);
server.on('session', (s) => {
	sessions.add(s);
	s.on('close', () => sessions.delete(s));
});
server.listen(port, '127.0.0.1', () => {
	process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => {
	for (const s of sessions)
		s.destroy();
	server.close(() => process.exit(0));
	setTimeout(() => process.exit(0), 1000).unref();
});
