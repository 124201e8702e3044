/*
 * hpke_peer.mjs — the @hpke/core side of tests/unit/test_hpke.c's interop
 * test (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
 * AES-256-GCM). Not a test by itself: test_hpke runs it.
 *
 *   node hpke_peer.mjs seal <recipient public key, hex> <count>
 *       seals <count> random messages (random length, info and aad) and
 *       prints one line per message: pt info aad enc ct, each in hex
 *   node hpke_peer.mjs open <recipient private key, hex> <file>
 *       opens every line "pt info aad enc ct" of file and prints
 *       "ok <n>", or "fail <line> <reason>" at the first that does not
 *       open to its pt
 *
 * Security stance: test keys only; everything stays on stdin/stdout and
 * the file named.
 */
import { readFileSync } from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';

import { Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/core';

const suite = new CipherSuite({
	kem: new DhkemX25519HkdfSha256(),
	kdf: new HkdfSha256(),
	aead: new Aes256Gcm(),
});

const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));

async function seal(pkHex, count) {
	const pk = await suite.kem.deserializePublicKey(unhex(pkHex));
	const lines = [];

	for (let i = 0; i < count; i++) {
		const pt = randomBytes(randomInt(0, 512));
		const info = randomBytes(randomInt(0, 64));
		const aad = randomBytes(randomInt(0, 64));
		const { enc, ct } = await suite.seal({ recipientPublicKey: pk, info }, pt, aad);

		lines.push(`${hex(pt)} ${hex(info)} ${hex(aad)} ${hex(enc)} ${hex(ct)}`);
	}
	process.stdout.write(lines.join('\n') + '\n');
}

async function open(skHex, file) {
	const sk = await suite.kem.deserializePrivateKey(unhex(skHex));
	const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.length > 0);

	for (let i = 0; i < lines.length; i++) {
		const [pt, info, aad, enc, ct] = lines[i].split(' ');
		let got;

		try {
			got = await suite.open({ recipientKey: sk, enc: unhex(enc), info: unhex(info) },
			    unhex(ct), unhex(aad));
		} catch (e) {
			process.stdout.write(`fail ${i} ${e.name}\n`);
			return;
		}
		if (hex(got) !== pt) {
			process.stdout.write(`fail ${i} plaintext differs\n`);
			return;
		}
	}
	process.stdout.write(`ok ${lines.length}\n`);
}

const [mode, key, arg] = process.argv.slice(2);
if (mode === 'seal')
	await seal(key, Number(arg));
else if (mode === 'open')
	await open(key, arg);
else {
	process.stderr.write('usage: hpke_peer.mjs seal PKHEX COUNT | open SKHEX FILE\n');
	process.exit(2);
}
