package render

import "crypto"

// DKIM signs messages (RFC 6376).
type DKIM struct {
	Domain   string        // d=
	Selector string        // s=
	Signer   crypto.Signer // an RSA (2048 bits or more) or Ed25519 private key
}

// sign returns data with a DKIM-Signature field in front.
func (d *DKIM) sign(data []byte) ([]byte, error) {
	return data, nil // TODO(helper): sign
}
