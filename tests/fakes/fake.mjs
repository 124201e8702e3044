/*
 * fake.mjs — loopback fakes of the payment processors cn2-payments talks
 * to, each speaking its service's documented wire format, for tests only.
 *
 *   node tests/fakes/fake.mjs lnd    --port P --cert tls.cert --key tls.key --macaroon M.hex
 *   node tests/fakes/fake.mjs stripe --port P --api-key sk.txt
 *   node tests/fakes/fake.mjs tempo  --port P
 *
 * lnd     HTTPS with the node's own certificate (the test generates a
 *         self-signed one). POST /v1/invoices (JSON {"value", "memo",
 *         "expiry"}, macaroon in Grpc-Metadata-macaroon as hex) answers
 *         {"r_hash" (base64), "payment_request" (a BOLT11 invoice, bech32,
 *         regtest), "add_index", "payment_addr"}. The preimage stays here
 *         until the test, playing the buyer's wallet, asks for it:
 *         GET /_fake/preimage?hash=<hex> → {"preimage"}, or until a buyer
 *         pays one of its invoices through it, as through their own node:
 *         POST /v1/channels/transactions {"payment_request"} (SendPaymentSync)
 *         → {"payment_error": "", "payment_preimage", "payment_hash"} (base64).
 * stripe  POST /v1/payment_intents and POST /v1/refunds {payment_intent}
 *         (a succeeded intent once; again: 400 charge_already_refunded),
 *         form-encoded, HTTP Basic with the secret
 *         key, an Idempotency-Key required: a replay with the same key and
 *         parameters answers the same PaymentIntent with
 *         Idempotent-Replayed: true; other parameters under the same key,
 *         400 idempotency_error. Tokens: spt_ok_* succeed, spt_action_*
 *         requires_action, spt_decline_* 402 card_declined, others 400.
 * tempo   JSON-RPC 2.0 on POST /: eth_chainId, eth_getTransactionReceipt
 *         (null for an unknown hash; a receipt with a TIP-20 Transfer log
 *         for a registered one). POST /_fake/tx {"hash", "from", "to",
 *         "token", "amount", "status"} registers a transaction.
 *
 * Every fake: POST /_fake/control {"mode": "ok" | "error" | "slow",
 * "delay_ms"} (error: 500 on every service call; slow: wait delay_ms
 * first), GET /_fake/stats (calls by route and what the last call
 * carried). Listens on 127.0.0.1 only, prints "listening <port>" when up,
 * and stops on SIGTERM. It never logs a key, macaroon or token.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { readBody } from './body.mjs';

const args = process.argv.slice(2);
const service = args[0];
function opt(name) {
	const i = args.indexOf(`--${name}`);
	return i > 0 ? args[i + 1] : undefined;
}
const port = Number(opt('port') ?? 0);

const control = { mode: 'ok', delay_ms: 0 };
const stats = { calls: 0, by_route: {}, last: {} };

function reply(res, status, body, headers = {}) {
	const text = typeof body === 'string' ? body : JSON.stringify(body);
	res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
	res.end(text);
}

function sameSecret(a, b) {
	const x = Buffer.from(a ?? ''), y = Buffer.from(b ?? '');
	return x.length === y.length && timingSafeEqual(x, y);
}

/* bech32 (BIP 173), enough to write a BOLT11 invoice. */
const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
function polymod(values) {
	const gen = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
	let chk = 1;
	for (const v of values) {
		const top = chk >>> 25;
		chk = ((chk & 0x1ffffff) << 5) ^ v;
		for (let i = 0; i < 5; i++)
			if ((top >>> i) & 1)
				chk ^= gen[i];
	}
	return chk >>> 0;
}
function hrpExpand(hrp) {
	const out = [];
	for (const c of hrp)
		out.push(c.charCodeAt(0) >> 5);
	out.push(0);
	for (const c of hrp)
		out.push(c.charCodeAt(0) & 31);
	return out;
}
function bech32(hrp, words) {
	const mod = polymod([...hrpExpand(hrp), ...words, 0, 0, 0, 0, 0, 0]) ^ 1;
	const sum = [];
	for (let i = 0; i < 6; i++)
		sum.push((mod >>> (5 * (5 - i))) & 31);
	return hrp + '1' + [...words, ...sum].map((w) => CHARSET[w]).join('');
}
function toWords(bytes) {
	const out = [];
	let acc = 0, bits = 0;
	for (const b of bytes) {
		acc = (acc << 8) | b;
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			out.push((acc >>> bits) & 31);
		}
	}
	if (bits > 0)
		out.push((acc << (5 - bits)) & 31);
	return out;
}
function intWords(v, n) {
	const out = [];
	for (let i = n - 1; i >= 0; i--)
		out.push(Math.floor(v / 2 ** (5 * i)) % 32);
	return out;
}
function tagged(type, words) {
	return [type, ...intWords(words.length, 2), ...words];
}
/* v as 5-bit big-endian words with no leading zero word (BOLT #11's integer fields). */
function minWords(v) {
	const out = [];
	for (; v > 0; v = Math.floor(v / 32))
		out.unshift(v % 32);
	return out;
}
/*
 * A regtest invoice for sats with this hash and payment secret. The
 * signature has a valid shape (recovery id 0 or 1) but is random: nobody
 * can check it without the node's key, and cn2 does not.
 */
function bolt11(sats, hash, secret, memo, expiry) {
	const sig = randomBytes(65);
	sig[64] &= 1;
	const words = [
		...intWords(Math.floor(Date.now() / 1000), 7),
		...tagged(1, toWords(hash)),
		...tagged(16, toWords(secret)),
		...tagged(13, toWords(Buffer.from(memo, 'utf8'))),
		...tagged(6, minWords(expiry)),
		...toWords(sig),
	];
	return bech32(`lnbcrt${sats * 10}n`, words);
}

/* LND. */
const invoices = new Map(); /* hash hex → preimage hex */
const byRequest = new Map(); /* payment_request → hash hex */
let addIndex = 0;
function lnd(req, res, url, body) {
	if (req.method === 'GET' && url.pathname === '/_fake/preimage') {
		const pre = invoices.get(url.searchParams.get('hash') ?? '');
		return pre ? reply(res, 200, { preimage: pre }) : reply(res, 404, { message: 'no such invoice' });
	}
	const paying = url.pathname === '/v1/channels/transactions';
	if (req.method !== 'POST' || (url.pathname !== '/v1/invoices' && !paying))
		return reply(res, 404, { code: 5, message: 'Not Found' });
	if (!sameSecret(req.headers['grpc-metadata-macaroon'], lndMacaroon))
		return reply(res, 401, { code: 2, message: 'verification failed: signature mismatch after caveat verification' });
	let j;
	try {
		j = JSON.parse(body);
	} catch {
		return reply(res, 400, { code: 3, message: 'invalid JSON' });
	}
	if (paying) {
		const hash = byRequest.get(j.payment_request ?? '');
		if (!hash)
			return reply(res, 200, { payment_error: 'invoice not found', payment_preimage: '', payment_hash: '' });
		return reply(res, 200, {
			payment_error: '',
			payment_preimage: Buffer.from(invoices.get(hash), 'hex').toString('base64'),
			payment_hash: Buffer.from(hash, 'hex').toString('base64'),
		});
	}
	const sats = Number(j.value);
	const expiry = Number(j.expiry ?? 3600);
	if (!Number.isSafeInteger(sats) || sats < 1 || !Number.isSafeInteger(expiry) || expiry < 1)
		return reply(res, 400, { code: 3, message: 'invalid value or expiry' });
	stats.last = { value: String(j.value), memo: j.memo, expiry: String(j.expiry) };
	const preimage = randomBytes(32);
	const hash = createHash('sha256').update(preimage).digest();
	invoices.set(hash.toString('hex'), preimage.toString('hex'));
	const secret = randomBytes(32);
	const request = bolt11(sats, hash, secret, String(j.memo ?? ''), expiry);
	byRequest.set(request, hash.toString('hex'));
	reply(res, 200, {
		r_hash: hash.toString('base64'),
		payment_request: request,
		add_index: String(++addIndex),
		payment_addr: secret.toString('base64'),
	});
}

/* Stripe. */
const intents = new Map(); /* Idempotency-Key → {params, status, body} */
let created = 0;
function stripeError(res, status, type, code, message) {
	reply(res, status, { error: { type, code, message } });
}
const succeeded = new Map(); /* PaymentIntent id → { amount, refunded } */
const refunds = new Map(); /* Idempotency-Key → the refund's { params, status, body } */
function stripeRefund(res, key, p) {
	const params = [...p.entries()].sort().map((e) => e.join('=')).join('&');
	const old = refunds.get(key);
	if (old) {
		if (old.params !== params)
			return stripeError(res, 400, 'idempotency_error', 'idempotency_key_in_use',
			    'Keys for idempotent requests can only be used with the same parameters');
		return reply(res, old.status, old.body, { 'Idempotent-Replayed': 'true' });
	}
	const pi = succeeded.get(p.get('payment_intent') ?? '');
	let status = 200, out;
	if (!pi) {
		status = 400;
		out = { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such payment_intent' } };
	} else if (pi.refunded) {
		status = 400;
		out = { error: { type: 'invalid_request_error', code: 'charge_already_refunded', message: 'Charge has already been refunded.' } };
	} else {
		pi.refunded = true;
		stats.refunds = (stats.refunds ?? 0) + 1;
		out = {
			id: `re_${randomBytes(12).toString('hex')}`,
			object: 'refund',
			amount: pi.amount,
			currency: 'usd',
			payment_intent: p.get('payment_intent'),
			status: 'succeeded',
		};
	}
	refunds.set(key, { params, status, body: out });
	reply(res, status, out);
}
function stripe(req, res, url, body) {
	if (req.method !== 'POST' || (url.pathname !== '/v1/payment_intents' && url.pathname !== '/v1/refunds'))
		return stripeError(res, 404, 'invalid_request_error', 'resource_missing', 'Unrecognized request URL');
	const auth = req.headers.authorization ?? '';
	const user = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString() : '';
	if (!sameSecret(user, `${stripeKey}:`))
		return stripeError(res, 401, 'invalid_request_error', 'api_key_invalid', 'Invalid API Key provided');
	if ((req.headers['content-type'] ?? '') !== 'application/x-www-form-urlencoded')
		return stripeError(res, 400, 'invalid_request_error', 'parameter_invalid', 'form encoding expected');
	const key = req.headers['idempotency-key'];
	if (!key)
		return stripeError(res, 400, 'invalid_request_error', 'parameter_missing', 'Idempotency-Key required here');
	const p = new URLSearchParams(body);
	if (url.pathname === '/v1/refunds')
		return stripeRefund(res, key, p);
	stats.last = {
		idempotency_key: key,
		stripe_version: req.headers['stripe-version'],
		amount: p.get('amount'),
		currency: p.get('currency'),
		confirm: p.get('confirm'),
		has_token: p.has('shared_payment_granted_token'),
		redirects: p.get('automatic_payment_methods[allow_redirects]'),
	};
	const params = [...p.entries()].sort().map((e) => e.join('=')).join('&');
	const old = intents.get(key);
	if (old) {
		if (old.params !== params)
			return stripeError(res, 400, 'idempotency_error', 'idempotency_key_in_use',
			    'Keys for idempotent requests can only be used with the same parameters');
		return reply(res, old.status, old.body, { 'Idempotent-Replayed': 'true' });
	}
	const spt = p.get('shared_payment_granted_token') ?? '';
	const amount = Number(p.get('amount'));
	let status = 200, out;
	if (p.get('confirm') !== 'true' || !Number.isSafeInteger(amount) || amount < 1 || p.get('currency') !== 'usd') {
		status = 400;
		out = { error: { type: 'invalid_request_error', code: 'parameter_invalid', message: 'bad amount, currency or confirm' } };
	} else if (spt.startsWith('spt_decline_')) {
		status = 402;
		out = { error: { type: 'card_error', code: 'card_declined', decline_code: 'generic_decline', message: 'Your card was declined.' } };
	} else if (spt.startsWith('spt_ok_') || spt.startsWith('spt_action_')) {
		created++;
		out = {
			id: `pi_${randomBytes(12).toString('hex')}`,
			object: 'payment_intent',
			amount,
			currency: 'usd',
			confirmation_method: 'automatic',
			status: spt.startsWith('spt_ok_') ? 'succeeded' : 'requires_action',
			metadata: { challenge_id: p.get('metadata[challenge_id]') ?? '' },
		};
		if (out.status === 'succeeded')
			succeeded.set(out.id, { amount, refunded: false });
	} else {
		status = 400;
		out = { error: { type: 'invalid_request_error', code: 'resource_missing', message: 'No such shared payment token' } };
	}
	intents.set(key, { params, status, body: out });
	reply(res, status, out);
}

/* Tempo. */
const TRANSFER = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef';
const txs = new Map(); /* lowercase hash → receipt */
function pad32(address) {
	return '0x' + address.slice(2).toLowerCase().padStart(64, '0');
}
function tempo(req, res, url, body) {
	let j;
	try {
		j = JSON.parse(body);
	} catch {
		return reply(res, 400, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
	}
	if (url.pathname === '/_fake/tx') {
		const receipt = {
			transactionHash: j.hash.toLowerCase(),
			blockNumber: '0x10',
			from: j.from,
			to: j.token,
			status: j.status ?? '0x1',
			logs: [{
				address: j.token,
				topics: [TRANSFER, pad32(j.from), pad32(j.to)],
				data: '0x' + BigInt(j.amount).toString(16).padStart(64, '0'),
				logIndex: '0x0',
			}],
		};
		txs.set(j.hash.toLowerCase(), receipt);
		return reply(res, 200, { ok: true });
	}
	stats.last = { method: j.method, params: j.params };
	if (j.method === 'eth_chainId')
		return reply(res, 200, { jsonrpc: '2.0', id: j.id, result: '0x1079' });
	if (j.method !== 'eth_getTransactionReceipt' || !Array.isArray(j.params) || typeof j.params[0] !== 'string')
		return reply(res, 200, { jsonrpc: '2.0', id: j.id, error: { code: -32601, message: 'Method not found' } });
	reply(res, 200, { jsonrpc: '2.0', id: j.id, result: txs.get(j.params[0].toLowerCase()) ?? null });
}

const handlers = { lnd, stripe, tempo };
const handler = handlers[service];
if (!handler) {
	console.error('usage: fake.mjs lnd|stripe|tempo --port P [options]');
	process.exit(2);
}
const lndMacaroon = service === 'lnd' ? readFileSync(opt('macaroon'), 'utf8').trim() : '';
const stripeKey = service === 'stripe' ? readFileSync(opt('api-key'), 'utf8').trim() : '';

function serve(req, res) {
	readBody(req, (body) => {
		const url = new URL(req.url, 'http://fake');
		if (url.pathname === '/_fake/control') {
			Object.assign(control, { mode: 'ok', delay_ms: 0 }, JSON.parse(body || '{}'));
			return reply(res, 200, control);
		}
		if (url.pathname === '/_fake/stats')
			return reply(res, 200, { ...stats, created, invoices: invoices.size });
		if (url.pathname.startsWith('/_fake/'))
			return handler(req, res, url, body);
		stats.calls++;
		stats.by_route[url.pathname] = (stats.by_route[url.pathname] ?? 0) + 1;
		const go = () => (control.mode === 'error'
		    ? reply(res, 500, { error: { type: 'api_error', message: 'fake outage' }, code: 2, message: 'fake outage' })
		    : handler(req, res, url, body));
		if (control.mode === 'slow')
			setTimeout(go, control.delay_ms);
		else
			go();
	});
}

const server = service === 'lnd'
    ? https.createServer({ cert: readFileSync(opt('cert')), key: readFileSync(opt('key')) }, serve)
    : http.createServer(serve);
server.keepAliveTimeout = 5000;
server.listen(port, '127.0.0.1', () => {
	process.stdout.write(`listening ${server.address().port}\n`);
});
process.on('SIGTERM', () => {
	server.closeAllConnections?.();
	server.close(() => process.exit(0));
	setTimeout(() => process.exit(0), 1000).unref();
});
