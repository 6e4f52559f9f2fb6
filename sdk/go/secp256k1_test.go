package mpc_test

// An independent secp256k1 ECDSA verifier for the tests, on math/big only (Go's standard
// library has no secp256k1): public-key recovery (ecrecover) and plain verification, in affine
// coordinates. Slow and not constant-time — it checks public values in tests, nothing else.

import (
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"math/big"
)

var (
	curveP, _  = new(big.Int).SetString("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F", 16)
	curveN, _  = new(big.Int).SetString("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)
	curveGx, _ = new(big.Int).SetString("79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798", 16)
	curveGy, _ = new(big.Int).SetString("483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8", 16)
)

// point is an affine point; nil coordinates are the point at infinity.
type point struct{ x, y *big.Int }

func (a point) inf() bool { return a.x == nil }

func mod(v *big.Int) *big.Int { return v.Mod(v, curveP) }

func add(a, b point) point {
	if a.inf() {
		return b
	}
	if b.inf() {
		return a
	}
	var lambda *big.Int
	if a.x.Cmp(b.x) == 0 {
		if new(big.Int).Add(a.y, b.y).Mod(new(big.Int).Add(a.y, b.y), curveP).Sign() == 0 {
			return point{}
		}
		// Doubling: 3x² / 2y.
		num := mod(new(big.Int).Mul(big.NewInt(3), new(big.Int).Mul(a.x, a.x)))
		den := new(big.Int).ModInverse(mod(new(big.Int).Mul(big.NewInt(2), a.y)), curveP)
		lambda = mod(num.Mul(num, den))
	} else {
		num := mod(new(big.Int).Sub(b.y, a.y))
		den := new(big.Int).ModInverse(mod(new(big.Int).Sub(b.x, a.x)), curveP)
		lambda = mod(num.Mul(num, den))
	}
	x := mod(new(big.Int).Sub(new(big.Int).Sub(new(big.Int).Mul(lambda, lambda), a.x), b.x))
	y := mod(new(big.Int).Sub(new(big.Int).Mul(lambda, new(big.Int).Sub(a.x, x)), a.y))
	return point{x, y}
}

func mul(k *big.Int, a point) point {
	r := point{}
	for i := k.BitLen() - 1; i >= 0; i-- {
		r = add(r, r)
		if k.Bit(i) == 1 {
			r = add(r, a)
		}
	}
	return r
}

// liftX is the curve point with x and the given parity of y (y² = x³ + 7; p ≡ 3 mod 4).
func liftX(x *big.Int, odd bool) (point, error) {
	rhs := mod(new(big.Int).Add(new(big.Int).Exp(x, big.NewInt(3), curveP), big.NewInt(7)))
	e := new(big.Int).Rsh(new(big.Int).Add(curveP, big.NewInt(1)), 2)
	y := new(big.Int).Exp(rhs, e, curveP)
	if mod(new(big.Int).Mul(y, y)).Cmp(rhs) != 0 {
		return point{}, fmt.Errorf("x is not on the curve")
	}
	if (y.Bit(0) == 1) != odd {
		y.Sub(curveP, y)
	}
	return point{new(big.Int).Set(x), y}, nil
}

// ecrecover returns the uncompressed public key (04‖x‖y) that signed hash with (r, s, v).
func ecrecover(hash []byte, r, s *big.Int, v int) ([]byte, error) {
	if r.Sign() <= 0 || r.Cmp(curveN) >= 0 || s.Sign() <= 0 || s.Cmp(curveN) >= 0 || (v != 0 && v != 1) {
		return nil, fmt.Errorf("r, s or v out of range")
	}
	R, err := liftX(r, v == 1)
	if err != nil {
		return nil, err
	}
	e := new(big.Int).SetBytes(hash)
	rInv := new(big.Int).ModInverse(r, curveN)
	g := point{curveGx, curveGy}
	// Q = r⁻¹ (sR − eG)
	negE := new(big.Int).Mod(new(big.Int).Neg(e), curveN)
	q := mul(rInv, add(mul(s, R), mul(negE, g)))
	if q.inf() {
		return nil, fmt.Errorf("recovered the point at infinity")
	}
	out := make([]byte, 65)
	out[0] = 4
	q.x.FillBytes(out[1:33])
	q.y.FillBytes(out[33:])
	return out, nil
}

// verify is plain ECDSA verification: (u₁G + u₂Q).x mod n = r.
func verify(pub []byte, hash []byte, r, s *big.Int) bool {
	q := point{new(big.Int).SetBytes(pub[1:33]), new(big.Int).SetBytes(pub[33:])}
	w := new(big.Int).ModInverse(s, curveN)
	u1 := new(big.Int).Mod(new(big.Int).Mul(new(big.Int).SetBytes(hash), w), curveN)
	u2 := new(big.Int).Mod(new(big.Int).Mul(r, w), curveN)
	x := add(mul(u1, point{curveGx, curveGy}), mul(u2, q))
	return !x.inf() && new(big.Int).Mod(x.x, curveN).Cmp(r) == 0
}

// checkSignature: low s, ECDSA verifies, ecrecover gives the key, the DER form is (r, s).
func checkSignature(publicKeyHex, hashHex, rHex, sHex string, v int, derHex string) error {
	pub, err := hex.DecodeString(publicKeyHex)
	if err != nil || len(pub) != 65 || pub[0] != 4 {
		return fmt.Errorf("bad public key %q", publicKeyHex)
	}
	if len(hashHex) > 2 && hashHex[:2] == "0x" {
		hashHex = hashHex[2:]
	}
	hash, err := hex.DecodeString(hashHex)
	if err != nil || len(hash) != 32 {
		return fmt.Errorf("bad hash %q", hashHex)
	}
	r, okR := new(big.Int).SetString(rHex, 16)
	s, okS := new(big.Int).SetString(sHex, 16)
	if !okR || !okS {
		return fmt.Errorf("r or s is not hex")
	}
	if s.Cmp(new(big.Int).Rsh(curveN, 1)) > 0 {
		return fmt.Errorf("high s")
	}
	if !verify(pub, hash, r, s) {
		return fmt.Errorf("the signature does not verify")
	}
	rec, err := ecrecover(hash, r, s, v)
	if err != nil {
		return err
	}
	if hex.EncodeToString(rec) != hex.EncodeToString(pub) {
		return fmt.Errorf("ecrecover returned another key")
	}
	der, err := hex.DecodeString(derHex)
	if err != nil {
		return err
	}
	var parsed struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &parsed); err != nil || len(rest) != 0 {
		return fmt.Errorf("bad DER: %v", err)
	}
	if parsed.R.Cmp(r) != 0 || parsed.S.Cmp(s) != 0 {
		return fmt.Errorf("the DER signature is another one")
	}
	return nil
}
