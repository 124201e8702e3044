/*
 * body.mjs — what the loopback fakes share: reading a request body with a
 * bound (a request over 1 MiB is cut off, never buffered).
 */

/* Call done(body as UTF-8) once req's body has arrived; past max bytes, drop the request. */
export function readBody(req, done, max = 1 << 20) {
	const chunks = [];
	let size = 0;
	req.on('data', (c) => {
		size += c.length;
		if (size > max)
			req.destroy();
		else
			chunks.push(c);
	});
	req.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
}
