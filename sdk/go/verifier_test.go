package mpc_test

import (
	"encoding/hex"
	"math/big"
	"testing"
)

// The verifier itself, on known values: G is the public key of private key 1, and a signature
// made by hand with private key 1 and nonce 2 must verify and recover G.
func TestVerifierOnKnownValues(t *testing.T) {
	g := point{curveGx, curveGy}
	two := mul(big.NewInt(2), g)
	if !add(g, g).inf() && add(g, g).x.Cmp(two.x) != 0 {
		t.Fatal("doubling and scalar multiplication disagree")
	}
	if !mul(curveN, g).inf() {
		t.Fatal("n·G is not the point at infinity")
	}
	// s = k⁻¹ (e + r·d) with d = 1, k = 2, e = 5.
	hash := make([]byte, 32)
	hash[31] = 5
	r := new(big.Int).Mod(two.x, curveN)
	s := new(big.Int).Mul(new(big.Int).ModInverse(big.NewInt(2), curveN), new(big.Int).Add(big.NewInt(5), r))
	s.Mod(s, curveN)
	v := int(two.y.Bit(0))
	if s.Cmp(new(big.Int).Rsh(curveN, 1)) > 0 {
		s.Sub(curveN, s)
		v ^= 1
	}
	pub := make([]byte, 65)
	pub[0] = 4
	curveGx.FillBytes(pub[1:33])
	curveGy.FillBytes(pub[33:])
	if !verify(pub, hash, r, s) {
		t.Fatal("a correct signature does not verify")
	}
	rec, err := ecrecover(hash, r, s, v)
	if err != nil || hex.EncodeToString(rec) != hex.EncodeToString(pub) {
		t.Fatalf("ecrecover: %v", err)
	}
	if verify(pub, hash, r, new(big.Int).Add(s, big.NewInt(1))) {
		t.Fatal("a wrong signature verifies")
	}
	if rec, _ := ecrecover(hash, r, s, v^1); rec != nil && hex.EncodeToString(rec) == hex.EncodeToString(pub) {
		t.Fatal("the other recovery id gives the same key")
	}
}
