package modelconfig

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// A sealed key is stored as base64url (no padding) of
//
//	0x02 ‖ key id (4 bytes) ‖ nonce (12 bytes) ‖ AES-256-GCM ciphertext and tag
//
// with the additional data "lectern/tprv-v2" ‖ 0 ‖ teacher ‖ 0 ‖ provider,
// so a blob moved to another teacher's or provider's record does not open.
// The key id (from the master key, never the key itself) tells a wrong
// master key apart from a damaged blob. The predecessor's blobs start with
// 0x01 (an HMAC-SHA256 keystream under SHA-256 of its MASTER_KEY
// passphrase); they are read with Config.LegacySecret only.
const (
	blobV1       = 0x01
	blobV2       = 0x02
	keyIDSize    = 4
	nonceSize    = 12
	v1HeaderSize = 1 + 12 + 16
)

// Why a stored key cannot be read (the api_key_status of a provider).
const (
	keyOK                  = "ok"
	keyNone                = "api_key_missing"
	keyMasterMissing       = "master_key_missing"
	keyMasterMismatch      = "master_key_mismatch"
	keyIntegrity           = "secret_integrity_check_failed"
	keyInvalid             = "invalid_encrypted_secret"
	keyLegacySecretMissing = "legacy_master_key_missing"
)

// keyError is a stored key that cannot be read, with its status code.
type keyError struct {
	code string
	msg  string
}

func (e *keyError) Error() string { return e.code + ": " + e.msg }

// keyStatus is the status code of err (keyOK for nil).
func keyStatus(err error) string {
	var ke *keyError
	switch {
	case err == nil:
		return keyOK
	case errors.As(err, &ke):
		return ke.code
	}
	return keyInvalid
}

// sealer seals and opens keys under the master key.
type sealer struct {
	aead  cipher.AEAD
	keyID [keyIDSize]byte
}

func newSealer(master []byte) (*sealer, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("modelconfig: the master key must be %d bytes, got %d", MasterKeySize, len(master))
	}
	k, err := hkdf.Key(sha256.New, master, nil, "lectern/provider-registry/aes-256-gcm", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &sealer{aead: aead}
	id := sha256.Sum256(append([]byte("lectern/provider-registry/key-id\x00"), master...))
	copy(s.keyID[:], id[:])
	return s, nil
}

func additionalData(teacherID, providerID string) []byte {
	return []byte("lectern/tprv-v2\x00" + teacherID + "\x00" + providerID)
}

// seal encrypts key for the teacher's provider.
func (s *sealer) seal(key, teacherID, providerID string) (string, error) {
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := make([]byte, 0, 1+keyIDSize+nonceSize+len(key)+s.aead.Overhead())
	out = append(out, blobV2)
	out = append(out, s.keyID[:]...)
	out = append(out, nonce...)
	out = s.aead.Seal(out, nonce, []byte(key), additionalData(teacherID, providerID))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// openKey decrypts a stored blob of the teacher's provider.
func openKey(blob string, s *sealer, legacy, teacherID, providerID string) (string, error) {
	blob = strings.TrimSpace(blob)
	if blob == "" {
		return "", &keyError{keyNone, "no API key is stored for this provider"}
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(blob, "="))
	if err != nil || len(raw) == 0 {
		return "", &keyError{keyInvalid, "the stored key is not a sealed blob"}
	}
	switch raw[0] {
	case blobV2:
		if len(raw) < 1+keyIDSize+nonceSize+16 {
			return "", &keyError{keyInvalid, "the stored key is truncated"}
		}
		if s == nil {
			return "", &keyError{keyMasterMissing, "no master key is configured, so stored keys cannot be read"}
		}
		if !hmac.Equal(raw[1:1+keyIDSize], s.keyID[:]) {
			return "", &keyError{keyMasterMismatch, "the key was sealed under a different master key than the one configured"}
		}
		nonce := raw[1+keyIDSize : 1+keyIDSize+nonceSize]
		plain, err := s.aead.Open(nil, nonce, raw[1+keyIDSize+nonceSize:], additionalData(teacherID, providerID))
		if err != nil {
			return "", &keyError{keyIntegrity, "the stored key failed its integrity check (damaged, or moved from another record)"}
		}
		return string(plain), nil
	case blobV1:
		if legacy == "" {
			return "", &keyError{keyLegacySecretMissing, "the key was stored by the predecessor; set " + EnvLegacyMasterKey + " to its MASTER_KEY to read it"}
		}
		return openLegacy(raw, legacy)
	}
	return "", &keyError{keyInvalid, fmt.Sprintf("unknown sealed-key version %d", raw[0])}
}

// openLegacy reads the predecessor's tprv-v1 blob: key = SHA-256 of the
// passphrase, keystream block i = HMAC-SHA256(key, nonce ‖ i), tag = the
// first 16 bytes of HMAC-SHA256(key, "tprv-v1:" ‖ nonce ‖ ciphertext).
func openLegacy(raw []byte, passphrase string) (string, error) {
	if len(raw) < v1HeaderSize {
		return "", &keyError{keyInvalid, "the predecessor's sealed key is truncated"}
	}
	key := sha256.Sum256([]byte(passphrase))
	nonce, tag, ct := raw[1:13], raw[13:29], raw[29:]
	mac := hmac.New(sha256.New, key[:])
	mac.Write([]byte("tprv-v1:"))
	mac.Write(nonce)
	mac.Write(ct)
	if !hmac.Equal(tag, mac.Sum(nil)[:16]) {
		return "", &keyError{keyIntegrity, "the predecessor's sealed key does not open with " + EnvLegacyMasterKey}
	}
	plain := make([]byte, len(ct))
	var block []byte
	for i := range ct {
		if i%sha256.Size == 0 {
			m := hmac.New(sha256.New, key[:])
			m.Write(nonce)
			var ctr [4]byte
			binary.BigEndian.PutUint32(ctr[:], uint32(i/sha256.Size))
			m.Write(ctr[:])
			block = m.Sum(nil)
		}
		plain[i] = ct[i] ^ block[i%sha256.Size]
	}
	if !utf8.Valid(plain) {
		return "", &keyError{keyIntegrity, "the predecessor's sealed key is not text"}
	}
	return string(plain), nil
}

// isLegacyBlob reports whether blob is the predecessor's format.
func isLegacyBlob(blob string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(strings.TrimSpace(blob), "="))
	return err == nil && len(raw) > 0 && raw[0] == blobV1
}

// maskKey shows a key as its first and last 4 characters around "****";
// a key of 12 characters or fewer is all stars (showing 8 of them would
// show most of it).
func maskKey(key string) string {
	r := []rune(strings.TrimSpace(key))
	switch {
	case len(r) == 0:
		return ""
	case len(r) <= 12:
		return strings.Repeat("*", len(r))
	}
	return string(r[:4]) + "****" + string(r[len(r)-4:])
}
