/*
 * catalogue.S — the shipped provider catalogue (vault/providers.json),
 * embedded in the cn2 binary so `cn2 init` can write it out anywhere.
 */
	.section .rodata
	.global cli_catalogue
	.type cli_catalogue, @object
cli_catalogue:
	.incbin "vault/providers.json"
	.byte 0
	.size cli_catalogue, . - cli_catalogue
	.section .note.GNU-stack, "", @progbits
