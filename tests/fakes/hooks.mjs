/*
 * hooks.mjs — a seller's webhook endpoint, for tests only: it checks every
 * delivery with the Standard Webhooks reference library (the npm package
 * standardwebhooks, installed in tests/node) as a seller's own endpoint
 * would, and says what it got.
 *
 *   node tests/fakes/hooks.mjs --port P
 *
 *   POST /_fake/secret  {"secret": "whsec_…"}  the endpoint's signing secret
 *   POST /_fake/control {"fail": N}            answer the next N deliveries 500
 *   GET  /_fake/stats   {received, verified, invalid, failed, deliveries:
 *                        [{id, timestamp, type, key_id, event_id, detail}]}
 *   POST anything else  a delivery: 204 when its signature verifies (and no
 *                       failure is asked for), 401 when it does not
 *
 * Listens on 127.0.0.1 only, prints "listening <port>" when up, stops on
 * SIGTERM, and never logs a secret or a body.
 */
import http from 'node:http';
import { createRequire } from 'node:module';
import { readBody } from './body.mjs';

const require = createRequire(new URL('../node/package.json', import.meta.url));
const { Webhook } = require('standardwebhooks');

const args = process.argv.slice(2);
const port = Number(args[args.indexOf('--port') + 1]);
let verifier = null;
let fail = 0;
const stats = { received: 0, verified: 0, invalid: 0, failed: 0, deliveries: [] };

function reply(res, status, body) {
	const text = body === undefined ? '' : JSON.stringify(body);
	res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
	res.end(text);
}

function delivery(req, res, body) {
	stats.received++;
	let event;
	try {
		if (verifier === null)
			throw new Error('no secret');
		event = verifier.verify(body, req.headers);
	} catch {
		stats.invalid++;
		return reply(res, 401, { error: 'signature' });
	}
	if (fail > 0) {
		fail--;
		stats.failed++;
		return reply(res, 500, { error: 'asked to fail' });
	}
	stats.verified++;
	stats.deliveries.push({
		id: req.headers['webhook-id'],
		timestamp: req.headers['webhook-timestamp'],
		type: event.type,
		key_id: event.data?.key_id,
		event_id: event.data?.event_id,
		detail: event.data?.detail,
	});
	reply(res, 204);
}

const server = http.createServer((req, res) => readBody(req, (body) => {
	const path = new URL(req.url, 'http://fake').pathname;
	if (req.method === 'GET' && path === '/_fake/stats')
		return reply(res, 200, stats);
	let j = {};
	if (path.startsWith('/_fake/')) {
		try {
			j = JSON.parse(body || '{}');
		} catch {
			return reply(res, 400, { error: 'bad json' });
		}
	}
	if (path === '/_fake/secret') {
		verifier = new Webhook(String(j.secret ?? ''));
		return reply(res, 200, { ok: true });
	}
	if (path === '/_fake/control') {
		fail = Number.isInteger(j.fail) ? j.fail : 0;
		return reply(res, 200, { fail });
	}
	if (req.method !== 'POST')
		return reply(res, 405, { error: 'POST only' });
	delivery(req, res, body);
}));
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
