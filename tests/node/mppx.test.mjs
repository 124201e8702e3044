/*
 * mppx.test.mjs — interop: cn2's edge paid by the reference MPP SDK.
 *
 * Starts a private `cn2 up` (temp state directory, free loopback ports),
 * then drives its plain-HTTP edge with the `mppx` npm package (pinned in
 * package.json): a custom `test` charge method built with Method.from /
 * Method.toClient pays a demo chat completion through Mppx.create's fetch
 * wrapper, so the 402 parsing, challenge selection and credential
 * serialization on the client side are the SDK's, not ours. Further tests
 * check that mppx's Challenge parser reads exactly what cn2 sent, that a
 * hand-built Credential.serialize is accepted, and that a replayed
 * credential is refused with invalid-challenge.
 *
 * Lightning: cn2-payments is pointed at the fake LND node
 * (tests/fakes/fake.mjs lnd, over TLS with the self-signed certificate
 * `cn2 init` made for this run), and a `lightning` charge client built the
 * same way pays with the preimage the fake hands to the test, as a wallet
 * would after paying the invoice. mppx ships no lightning client; the
 * request and payload schemas here are the Lightning charge draft's.
 *
 * Security stance: everything listens on and talks to 127.0.0.1 only; the
 * test secret is read from the temp directory `cn2 up` created and never
 * printed. Every wait is bounded; cn2 runs in its own process group so a
 * stuck shutdown can be ended with one SIGKILL to the group.
 *
 * Run: (cd tests/node && npm ci) && node --test --test-reporter=tap tests/node/mppx.test.mjs
 * The build directory is $CN2_BUILD (default "build"), relative to the repo root.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { appendFile, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Challenge, Credential, Method, PaymentRequest, Receipt, z } from 'mppx';
import { Mppx } from 'mppx/client';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BUILD = path.resolve(REPO, process.env.CN2_BUILD || 'build');
const CN2 = path.join(BUILD, 'bin', 'cn2');

const READY_MS = 30000;		/* cn2 up: all daemons ready */
const STOP_MS = 10000;		/* cn2 up's own grace is 5 s, then it kills */
const REQUEST_MS = 10000;	/* one HTTP exchange with the edge */
const PROBLEM = 'https://paymentauth.org/problems/';
const CHAT_BODY = JSON.stringify({
	model: 'demo-1',
	messages: [
		{ role: 'system', content: 'be brief' },
		{ role: 'user', content: 'hi' },
	],
});

let cn2 = null;		/* the `cn2 up` child process */
let cn2Exit = null;	/* promise settled when it exits */
let stderrTail = '';	/* its last stderr output, for failure messages */
let tmpDir = null;
let baseUrl = null;	/* http://demo.localhost:<http port> */
let testSecret = null;	/* raw bytes of secrets/test.key */
let lnd = null;		/* the fake LND child process */
let lndPort = 0;
let lndCert = null;	/* its certificate (PEM), to trust when asking it for a preimage */

/*
 * Free loopback ports: hold every listener open until all are picked so the
 * kernel cannot hand the same port out twice.
 */
async function freePorts(n) {
	const servers = [];
	try {
		for (let i = 0; i < n; i++) {
			const s = net.createServer();
			servers.push(s);
			await new Promise((resolve, reject) => {
				s.once('error', reject);
				s.listen(0, '127.0.0.1', resolve);
			});
		}
		return servers.map((s) => s.address().port);
	} finally {
		await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
	}
}

function withTimeout(promise, ms, what) {
	let timer;
	const timeout = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms} ms`)), ms);
	});
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/*
 * Name resolution for the edge: this machine's resolver does not know
 * *.localhost, and the edge picks the provider by Host header, so connect to
 * 127.0.0.1 while the URL (hence Host) keeps its name. Anything but
 * localhost names is refused: the test must not reach outside.
 */
function loopbackLookup(hostname, options, callback) {
	if (typeof options === 'function') {
		callback = options;
		options = {};
	}
	if (hostname !== 'localhost' && !hostname.endsWith('.localhost')) {
		callback(Object.assign(new Error(`not a loopback name: ${hostname}`), { code: 'ENOTFOUND' }));
		return;
	}
	if (options && options.all)
		callback(null, [{ address: '127.0.0.1', family: 4 }]);
	else
		callback(null, '127.0.0.1', 4);
}

/*
 * A fetch-compatible function over node:http with loopbackLookup. It only
 * moves bytes: headers and body go out as the caller (mppx) made them, and
 * every response header line comes back, repeated WWW-Authenticate included.
 */
async function loopbackFetch(input, init) {
	const req = new Request(input, init);
	const body = req.body ? Buffer.from(await req.arrayBuffer()) : null;
	const headers = {};
	req.headers.forEach((value, name) => {
		headers[name] = value;
	});
	if (body)
		headers['content-length'] = String(body.length);
	return new Promise((resolve, reject) => {
		const out = http.request(req.url, {
			method: req.method,
			headers,
			lookup: loopbackLookup,
			agent: false,
		}, (res) => {
			const chunks = [];
			res.on('data', (c) => chunks.push(c));
			res.on('error', reject);
			res.on('end', () => {
				const h = new Headers();
				for (let i = 0; i + 1 < res.rawHeaders.length; i += 2)
					h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
				const noBody = [101, 204, 205, 304].includes(res.statusCode) ||
				    req.method === 'HEAD';
				resolve(new Response(noBody ? null : Buffer.concat(chunks), {
					status: res.statusCode,
					statusText: res.statusMessage,
					headers: h,
				}));
			});
		});
		out.setTimeout(REQUEST_MS, () => out.destroy(new Error(`${req.url}: timed out`)));
		out.on('error', reject);
		out.end(body ?? undefined);
	});
}

function b64urlDecode(s) {
	return Buffer.from(s, 'base64url').toString('utf8');
}

/* cn2's test method proof: base64url_nopad(HMAC-SHA256(test.key bytes, challenge id)). */
function proofFor(challengeId) {
	return createHmac('sha256', testSecret).update(challengeId, 'utf8').digest('base64url');
}

/*
 * An independent reading of one `Payment k="v", …` challenge, to compare
 * mppx's parser against: cn2 quotes every value and escapes nothing in them.
 */
function parseChallengeHeader(value) {
	assert.match(value, /^Payment /, `not a Payment challenge: ${value}`);
	const params = {};
	const re = /([A-Za-z0-9_-]+)="([^"\\]*)"\s*(?:,\s*|$)/gy;
	re.lastIndex = 'Payment '.length;
	let m;
	while (re.lastIndex < value.length && (m = re.exec(value)) !== null) {
		assert.equal(params[m[1].toLowerCase()], undefined, `duplicate ${m[1]}`);
		params[m[1].toLowerCase()] = m[2];
	}
	assert.equal(re.lastIndex, value.length, `unparsed tail in: ${value}`);
	return params;
}

const testCharge = Method.from({
	name: 'test',
	intent: 'charge',
	schema: {
		request: z.object({
			amount: z.string(),
			currency: z.string(),
			recipient: z.string(),
		}),
		credential: {
			payload: z.object({ proof: z.string() }),
		},
	},
});

/* A client for testCharge that records each challenge and credential it makes. */
function testClient(made) {
	return Method.toClient(testCharge, {
		async createCredential({ challenge }) {
			const credential = Credential.serialize({
				challenge,
				payload: { proof: proofFor(challenge.id) },
			});
			made.push({ challenge, credential });
			return credential;
		},
	});
}

/*
 * mppx's fetch wrapper over loopbackFetch. One payment attempt only, so a
 * rejected credential comes back as cn2's 402 instead of a second payment;
 * no polyfill, so the global fetch stays untouched.
 */
function payingClient(made) {
	return Mppx.create({
		methods: [testClient(made)],
		fetch: loopbackFetch,
		polyfill: false,
		maxPaymentRetries: 1,
	});
}

function chatRequest(extraHeaders = {}) {
	return {
		method: 'POST',
		headers: { 'Content-Type': 'application/json', ...extraHeaders },
		body: CHAT_BODY,
	};
}

/*
 * A paid 200: the demo upstream's completion of CHAT_BODY, and a receipt
 * that both a plain decode and mppx's Receipt parser read as a test success.
 */
async function assertPaid(res) {
	const text = await res.text();
	const header = res.headers.get('payment-receipt');
	assert.equal(res.status, 200, `status ${res.status}, body: ${text}`);
	const body = JSON.parse(text);
	assert.equal(body.object, 'chat.completion');
	assert.equal(body.model, 'demo-1');
	assert.equal(body.choices[0].message.content, 'demo reply: 2 messages');

	assert.ok(header, 'no Payment-Receipt on a paid 200');
	const raw = JSON.parse(b64urlDecode(header));
	assert.equal(raw.status, 'success');
	assert.equal(raw.method, 'test');
	assert.ok(!Number.isNaN(Date.parse(raw.timestamp)), `timestamp ${raw.timestamp}`);
	assert.equal(typeof raw.reference, 'string');
	assert.ok(raw.reference.length > 0);
	const receipt = Receipt.fromResponse(res);
	assert.equal(receipt.status, 'success');
	assert.equal(receipt.method, 'test');
	assert.equal(receipt.reference, raw.reference);
}

/* A 402 of the given problem type, with a fresh test challenge and no receipt. */
async function assertProblem(res, name, staleId) {
	const text = await res.text();
	assert.equal(res.status, 402, `status ${res.status}, body: ${text}`);
	assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
	assert.equal(res.headers.get('payment-receipt'), null, 'receipt on an error');
	const problem = JSON.parse(text);
	assert.equal(problem.type, PROBLEM + name, `problem: ${text}`);
	assert.equal(problem.status, 402);
	const fresh = Challenge.fromResponse(res, { methods: [testCharge] });
	assert.equal(fresh.method, 'test');
	assert.notEqual(fresh.id, staleId, 'the 402 repeats the spent challenge');
	assert.equal(problem.challengeId, fresh.id);
}

before(async () => {
	tmpDir = await mkdtemp(path.join(os.tmpdir(), 'cn2-mppx-'));
	const [httpPort, httpsPort, demoPort, fakePort] = await freePorts(4);
	const dir = path.join(tmpDir, 'var');
	const ports = ['--dir', dir, '--http-port', String(httpPort), '--https-port', String(httpsPort),
	    '--demo-port', String(demoPort)];
	assert.equal(spawnSync(CN2, ['init', ...ports], { stdio: 'ignore' }).status, 0, 'cn2 init');
	await startLnd(dir, fakePort);
	cn2 = spawn(CN2, ['up', ...ports], {
		cwd: REPO,
		detached: true,
		stdio: ['ignore', 'pipe', 'pipe'],
	});
	cn2Exit = new Promise((resolve) => {
		cn2.once('exit', (code, signal) => resolve({ code, signal }));
		cn2.once('error', (err) => resolve({ code: null, signal: null, err }));
	});
	cn2.stderr.setEncoding('utf8');
	cn2.stderr.on('data', (s) => {
		stderrTail = (stderrTail + s).slice(-4000);
	});
	let stdout = '';
	const ready = new Promise((resolve, reject) => {
		cn2.stdout.setEncoding('utf8');
		cn2.stdout.on('data', (s) => {
			stdout += s;
			if (stdout.includes('Ctrl-C stops everything'))
				resolve();
		});
		cn2Exit.then(({ code, signal, err }) => reject(new Error(
		    `cn2 up ended before ready (${err ?? code ?? signal}); stderr:\n${stderrTail}`)));
	});
	await withTimeout(ready, READY_MS, 'cn2 up');
	baseUrl = `http://demo.localhost:${httpPort}`;
	testSecret = await readFile(path.join(dir, 'secrets', 'test.key'));
	assert.equal(testSecret.length, 64, 'test.key is not 64 bytes');
});

/*
 * The fake LND on the certificate cn2 init made (localhost), with a
 * macaroon of its own; cn2-payments's configuration gets the lightning
 * method pointed at it.
 */
async function startLnd(dir, port) {
	const mac = path.join(dir, 'secrets', 'lnd.macaroon');
	await writeFile(mac, '0201036c6e64' + 'ab'.repeat(40) + '\n');
	await chmod(mac, 0o600);
	const cert = path.join(dir, 'tls', 'cert.pem');
	lndCert = await readFile(cert);
	lndPort = port;
	lnd = spawn('node', [path.join(REPO, 'tests', 'fakes', 'fake.mjs'), 'lnd', '--port', String(port),
	    '--cert', cert, '--key', path.join(dir, 'tls', 'key.pem'), '--macaroon', mac], {
		stdio: ['ignore', 'pipe', 'inherit'],
	});
	await withTimeout(new Promise((resolve, reject) => {
		lnd.stdout.setEncoding('utf8');
		lnd.stdout.on('data', (s) => s.includes('listening') && resolve());
		lnd.once('exit', (code) => reject(new Error(`fake LND exited ${code}`)));
	}), READY_MS, 'fake LND');
	await appendFile(path.join(dir, 'etc', 'payments.conf'),
	    `lnd_url = https://localhost:${port}\nlnd_macaroon_file = ${mac}\n` +
	    `lnd_tls_cert = ${cert}\nlightning_network = regtest\n`);
}

after(async () => {
	if (lnd && lnd.exitCode === null)
		lnd.kill('SIGTERM');
	if (cn2 && cn2.exitCode === null && cn2.signalCode === null) {
		cn2.kill('SIGTERM');
		try {
			await withTimeout(cn2Exit, STOP_MS, 'cn2 up stopping');
		} catch {
			try {
				process.kill(-cn2.pid, 'SIGKILL');
			} catch {
				/* the group is already gone */
			}
			await withTimeout(cn2Exit, STOP_MS, 'cn2 up after SIGKILL').catch(() => {});
		}
	}
	if (tmpDir)
		await rm(tmpDir, { recursive: true, force: true });
});

test('mppx fetch wrapper pays a demo chat completion with the test method', async () => {
	const made = [];
	const mppx = payingClient(made);
	const res = await mppx.fetch(`${baseUrl}/v1/chat/completions`, chatRequest());
	assert.equal(made.length, 1, 'mppx did not create exactly one credential');
	await assertPaid(res);

	const { challenge } = made[0];
	assert.equal(challenge.method, 'test');
	assert.equal(challenge.intent, 'charge');
	assert.equal(challenge.realm, 'demo.localhost');
	assert.match(challenge.request.amount, /^[1-9][0-9]*$/);
	assert.equal(challenge.request.currency, 'usdc');
	assert.equal(challenge.request.recipient, 'demo.localhost');
	assert.ok(challenge.opaque, 'challenge without opaque');
	assert.ok(Date.parse(challenge.expires) > Date.now(), `expires ${challenge.expires}`);
});

test('mppx Challenge parsing reads what cn2 sent; Credential.serialize is accepted', async () => {
	const first = await loopbackFetch(`${baseUrl}/v1/chat/completions`, chatRequest());
	const text = await first.text();
	assert.equal(first.status, 402, `unpaid request: ${first.status} ${text}`);
	assert.equal(JSON.parse(text).type, PROBLEM + 'payment-required');
	assert.equal(first.headers.get('payment-receipt'), null);

	const offers = Challenge.fromResponseList(first);
	const tests = offers.filter((c) => c.method === 'test' && c.intent === 'charge');
	assert.equal(tests.length, 1, `test/charge offers: ${offers.map((c) => c.method)}`);
	const challenge = Challenge.fromResponse(first, { methods: [testCharge] });
	assert.deepEqual(challenge, tests[0]);

	/* The same challenge, read by hand from the header cn2 sent. */
	const lines = first.headers.get('www-authenticate').split(/,\s*(?=Payment )/);
	const wire = lines.map(parseChallengeHeader).find((p) => p.method === 'test');
	assert.ok(wire, 'no test challenge in WWW-Authenticate');
	assert.equal(challenge.id, wire.id);
	assert.equal(challenge.realm, wire.realm);
	assert.equal(challenge.method, wire.method);
	assert.equal(challenge.intent, wire.intent);
	assert.equal(challenge.expires, wire.expires);
	assert.equal(challenge.opaque, wire.opaque);
	assert.deepEqual(challenge.request, JSON.parse(b64urlDecode(wire.request)));
	/* The client echoes the request re-encoded: cn2 must have sent it canonical. */
	assert.equal(PaymentRequest.serialize(challenge.request), wire.request);
	assert.equal(JSON.parse(text).challengeId, wire.id);

	const credential = Credential.serialize({
		challenge,
		payload: { proof: proofFor(challenge.id) },
	});
	assert.match(credential, /^Payment [A-Za-z0-9_-]+$/);
	const paid = await loopbackFetch(`${baseUrl}/v1/chat/completions`,
	    chatRequest({ Authorization: credential }));
	await assertPaid(paid);
});

/* The Lightning charge draft's request and payload, as an mppx method. */
const lightningCharge = Method.from({
	name: 'lightning',
	intent: 'charge',
	schema: {
		request: z.object({
			amount: z.string(),
			currency: z.string(),
			methodDetails: z.object({
				invoice: z.string(),
				paymentHash: z.string(),
				network: z.optional(z.string()),
			}),
		}),
		credential: {
			payload: z.object({ preimage: z.string() }),
		},
	},
});

/* The buyer's wallet: it "pays" the invoice and learns the preimage, from the fake LND. */
function preimageFor(hash) {
	return new Promise((resolve, reject) => {
		https.get({
			host: 'localhost',
			port: lndPort,
			path: `/_fake/preimage?hash=${hash}`,
			ca: lndCert,
			lookup: loopbackLookup,
		}, (res) => {
			let body = '';
			res.setEncoding('utf8');
			res.on('data', (c) => { body += c; });
			res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body).preimage)
			    : reject(new Error(`fake LND: ${res.statusCode} ${body}`))));
		}).on('error', reject);
	});
}

test('mppx pays with lightning: an LND invoice, the preimage as proof', async () => {
	const made = [];
	const mppx = Mppx.create({
		methods: [Method.toClient(lightningCharge, {
			async createCredential({ challenge }) {
				const preimage = await preimageFor(challenge.request.methodDetails.paymentHash);
				const credential = Credential.serialize({ challenge, payload: { preimage } });
				made.push({ challenge, preimage });
				return credential;
			},
		})],
		fetch: loopbackFetch,
		polyfill: false,
		maxPaymentRetries: 1,
	});
	const res = await mppx.fetch(`${baseUrl}/v1/chat/completions`, chatRequest());
	const text = await res.text();
	assert.equal(res.status, 200, `status ${res.status}, body: ${text}`);
	assert.equal(JSON.parse(text).object, 'chat.completion');
	assert.equal(made.length, 1);
	const { challenge, preimage } = made[0];
	assert.equal(challenge.method, 'lightning');
	assert.equal(challenge.request.currency, 'sat');
	assert.match(challenge.request.amount, /^[1-9][0-9]*$/);
	assert.match(challenge.request.methodDetails.invoice, /^lnbcrt[0-9]+n1/);
	assert.equal(challenge.request.methodDetails.network, 'regtest');
	const receipt = Receipt.fromResponse(res);
	assert.equal(receipt.status, 'success');
	assert.equal(receipt.method, 'lightning');
	assert.equal(receipt.reference, challenge.request.methodDetails.paymentHash);
	assert.equal(JSON.parse(b64urlDecode(res.headers.get('payment-receipt'))).challengeId, challenge.id);
	assert.ok(!res.headers.get('payment-receipt').includes(preimage));
	assert.equal(createHash('sha256').update(Buffer.from(preimage, 'hex')).digest('hex'),
	    challenge.request.methodDetails.paymentHash);
});

test('replaying the credential mppx built gets 402 invalid-challenge', async () => {
	const made = [];
	const mppx = payingClient(made);
	const res = await mppx.fetch(`${baseUrl}/v1/chat/completions`, chatRequest());
	await assertPaid(res);
	assert.equal(made.length, 1);

	const { challenge, credential } = made[0];
	const replay = await loopbackFetch(`${baseUrl}/v1/chat/completions`,
	    chatRequest({ Authorization: credential }));
	await assertProblem(replay, 'invalid-challenge', challenge.id);
});
