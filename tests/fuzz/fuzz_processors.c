/*
 * fuzz_processors.c — libFuzzer target for what cn2-payments reads from
 * payment processors: LND's AddInvoice answer, a Stripe PaymentIntent and
 * a Tempo eth_getTransactionReceipt answer (payments/lightning.c, stripe.c,
 * tempo.c). The first byte picks the reader (and a Stripe HTTP status);
 * the rest is the body.
 *
 * Beyond not crashing: whatever is accepted is well formed — LND's hash is
 * 64 lowercase hex digits and the invoice fits its buffer; a paying Stripe
 * answer names a PaymentIntent; a paying Tempo receipt names a payer
 * address — and nothing is left allocated (ASan's leak check).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "payments/payments.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const long statuses[] = {200, 400, 401, 402, 429, 500};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char hash[65], invoice[512], *body;
	struct pay_proof p;

	if (size < 1 || (body = malloc(size)) == NULL)
		return 0;
	memcpy(body, data + 1, size - 1);
	body[size - 1] = '\0';
	switch (data[0] % 3) {
	case 0:
		if (pay_lightning_parse_invoice(body, size - 1, hash, invoice, sizeof(invoice)) == 0 &&
		    (!pay_is_hex(hash, 64, 1) || strncmp(invoice, "ln", 2) != 0))
			abort();
		break;
	case 1:
		pay_stripe_judge(statuses[(data[0] / 3) % 6], body, size - 1, 50, &p);
		if (p.problem == PP_NONE && strncmp(p.reference, "pi_", 3) != 0)
			abort();
		break;
	default:
		pay_tempo_judge(body, size - 1, "0x20c0000000000000000000000000000000000001",
		    "0x742d35cc6634c0532925a3b844bc9e7595f8fe00", 1100, &p);
		if (p.problem == PP_NONE && strncmp(p.payer, "0x", 2) != 0)
			abort();
		break;
	}
	free(body);
	return 0;
}
