package main

// A software WebAuthn authenticator, enough for the bench's passkey step:
// one P-256 (ES256) key per member, "none" attestation, a sign count that
// goes up by one per assertion. It builds what a browser posts
// (PublicKeyCredential.toJSON()) from the options the server sends
// (PublicKeyCredentialCreationOptions / RequestOptions as JSON). The CBOR
// is the few fixed shapes WebAuthn needs, written by hand.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

var b64u = base64.RawURLEncoding

// softKey is one credential of a software authenticator.
type softKey struct {
	id      []byte
	priv    *ecdsa.PrivateKey
	handle  []byte // the member's user handle, from the creation options
	counter uint32 // the last sign count sent
}

// WebAuthn authenticator data flags.
const (
	flagUP = 0x01 // user present
	flagUV = 0x04 // user verified
	flagAT = 0x40 // attested credential data included
)

func newSoftKey() (*softKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	return &softKey{id: id, priv: priv}, nil
}

// creationOptions is what register/begin's "options" hold that the
// authenticator uses.
type creationOptions struct {
	PublicKey struct {
		RP struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID string `json:"id"` // base64url
		} `json:"user"`
		Challenge        string `json:"challenge"`
		PubKeyCredParams []struct {
			Alg int `json:"alg"`
		} `json:"pubKeyCredParams"`
	} `json:"publicKey"`
}

// requestOptions is what login/webauthn/begin's "options" hold.
type requestOptions struct {
	PublicKey struct {
		Challenge        string `json:"challenge"`
		RPID             string `json:"rpId"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
	} `json:"publicKey"`
}

// clientData is the JSON a browser signs over.
func clientData(typ, challenge, origin string) []byte {
	b, _ := json.Marshal(struct {
		Type        string `json:"type"`
		Challenge   string `json:"challenge"`
		Origin      string `json:"origin"`
		CrossOrigin bool   `json:"crossOrigin"`
	}{typ, challenge, origin, false})
	return b
}

// attest answers creation options (raw JSON of {"publicKey": …}) for the
// page at origin: the credential to post to register/finish.
func (k *softKey) attest(options []byte, origin string) (json.RawMessage, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("creation options: %w", err)
	}
	pk := o.PublicKey
	if pk.Challenge == "" || pk.RP.ID == "" {
		return nil, errors.New("creation options without challenge or rp.id")
	}
	es256 := false
	for _, p := range pk.PubKeyCredParams {
		es256 = es256 || p.Alg == -7
	}
	if !es256 {
		return nil, errors.New("creation options do not allow ES256 (-7)")
	}
	handle, err := b64u.DecodeString(pk.User.ID)
	if err != nil {
		return nil, fmt.Errorf("user.id: %w", err)
	}
	k.handle = handle
	cd := clientData("webauthn.create", pk.Challenge, origin)

	pub, err := k.priv.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	point := pub.Bytes() // 0x04 || X || Y, each 32 bytes with leading zeros kept
	rpHash := sha256.Sum256([]byte(pk.RP.ID))
	var auth []byte
	auth = append(auth, rpHash[:]...)
	auth = append(auth, flagUP|flagUV|flagAT)
	auth = binary.BigEndian.AppendUint32(auth, 0) // sign count
	auth = append(auth, make([]byte, 16)...)      // AAGUID: none
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(k.id)))
	auth = append(auth, k.id...)
	auth = append(auth, coseES256(point[1:33], point[33:65])...)

	// {"fmt": "none", "attStmt": {}, "authData": …}
	var att []byte
	att = cborHead(att, 5, 3)
	att = cborText(att, "fmt")
	att = cborText(att, "none")
	att = cborText(att, "attStmt")
	att = cborHead(att, 5, 0)
	att = cborText(att, "authData")
	att = cborBytes(att, auth)

	return json.Marshal(map[string]any{
		"id": b64u.EncodeToString(k.id), "rawId": b64u.EncodeToString(k.id), "type": "public-key",
		"authenticatorAttachment": "cross-platform",
		"response": map[string]any{
			"clientDataJSON":    b64u.EncodeToString(cd),
			"attestationObject": b64u.EncodeToString(att),
			"transports":        []string{"usb"},
		},
		"clientExtensionResults": map[string]any{},
	})
}

// assert answers request options (raw JSON of {"publicKey": …}) with the
// next sign count: the credential to post to login/webauthn/finish.
func (k *softKey) assert(options []byte, origin string) (json.RawMessage, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("request options: %w", err)
	}
	pk := o.PublicKey
	if pk.Challenge == "" || pk.RPID == "" {
		return nil, errors.New("request options without challenge or rpId")
	}
	if len(pk.AllowCredentials) > 0 {
		mine := b64u.EncodeToString(k.id)
		found := false
		for _, c := range pk.AllowCredentials {
			found = found || c.ID == mine
		}
		if !found {
			return nil, errors.New("request options do not allow this key")
		}
	}
	cd := clientData("webauthn.get", pk.Challenge, origin)
	k.counter++
	rpHash := sha256.Sum256([]byte(pk.RPID))
	auth := make([]byte, 0, 37)
	auth = append(auth, rpHash[:]...)
	auth = append(auth, flagUP|flagUV)
	auth = binary.BigEndian.AppendUint32(auth, k.counter)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(auth[:len(auth):len(auth)], cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		return nil, err
	}
	resp := map[string]any{
		"clientDataJSON":    b64u.EncodeToString(cd),
		"authenticatorData": b64u.EncodeToString(auth),
		"signature":         b64u.EncodeToString(sig),
	}
	if k.handle != nil {
		resp["userHandle"] = b64u.EncodeToString(k.handle)
	}
	return json.Marshal(map[string]any{
		"id": b64u.EncodeToString(k.id), "rawId": b64u.EncodeToString(k.id), "type": "public-key",
		"authenticatorAttachment": "cross-platform",
		"response":                resp,
		"clientExtensionResults":  map[string]any{},
	})
}

// coseES256 is the COSE_Key of a P-256 public key:
// {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}.
func coseES256(x, y []byte) []byte {
	var b []byte
	b = cborHead(b, 5, 5)
	b = cborInt(b, 1)
	b = cborInt(b, 2)
	b = cborInt(b, 3)
	b = cborInt(b, -7)
	b = cborInt(b, -1)
	b = cborInt(b, 1)
	b = cborInt(b, -2)
	b = cborBytes(b, x)
	b = cborInt(b, -3)
	b = cborBytes(b, y)
	return b
}

// cborHead appends a CBOR item head: major type and argument.
func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, m|27), n)
	}
}

func cborInt(b []byte, n int64) []byte {
	if n >= 0 {
		return cborHead(b, 0, uint64(n))
	}
	return cborHead(b, 1, uint64(-1-n))
}

func cborBytes(b, v []byte) []byte { return append(cborHead(b, 2, uint64(len(v))), v...) }

func cborText(b []byte, s string) []byte { return append(cborHead(b, 3, uint64(len(s))), s...) }
