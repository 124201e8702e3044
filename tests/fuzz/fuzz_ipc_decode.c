/*
 * fuzz_ipc_decode.c — libFuzzer target for ipc_decode, the reader of every
 * frame one daemon receives from another.
 *
 * A rejected frame must come with a reason. An accepted frame must agree
 * with its own header and the catalogue, and encoding what was decoded must
 * give back exactly the input: the codec is canonical, so no two byte
 * strings decode to the same message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ipc_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	union ipc_any m;
	struct ipc_hdr h, h2;
	uint8_t *out;

	if (ipc_decode(data, size, &h, &m, &why) != 0) {
		if (why == NULL)
			abort();
		return 0;
	}
	if (size < IPC_HDR_LEN || ipc_hdr_read(data, &h2) != 0 || h2.len != size ||
	    h2.type != h.type || h2.id != h.id || h.flags != 0 || ipc_type_name(h.type) == NULL)
		abort();
	if (ipc_frame_len(h.type, &m) != size || (out = malloc(size)) == NULL)
		abort();
	if (ipc_encode(h.type, h.id, &m, out, size) != size || memcmp(out, data, size) != 0)
		abort();
	free(out);
	return 0;
}
