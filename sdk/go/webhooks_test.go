package mpc_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	mpc "github.com/rwadurian/mpc-client-sdk-go"
)

const webhookSecret = "whsec_test"

var webhookBody = []byte(`{"event_id":"e","event":"session.completed"}`)

// sign computes the expected signature independently of the helper.
func sign(ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(webhookSecret))
	m.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

func TestVerifyWebhook(t *testing.T) {
	now := time.Unix(1700000000, 0)
	ts := now.Unix()
	if err := mpc.VerifyWebhook(webhookSecret, webhookBody, strconv.FormatInt(ts, 10), sign(ts, webhookBody), mpc.DefaultWebhookTolerance, now.Add(10*time.Second)); err != nil {
		t.Fatalf("a good delivery failed: %v", err)
	}
	tampered := append(append([]byte{}, webhookBody...), ' ')
	if err := mpc.VerifyWebhook(webhookSecret, tampered, strconv.FormatInt(ts, 10), sign(ts, webhookBody), mpc.DefaultWebhookTolerance, now); err == nil {
		t.Fatal("a tampered body passed")
	}
	old := ts - 301
	if err := mpc.VerifyWebhook(webhookSecret, webhookBody, strconv.FormatInt(old, 10), sign(old, webhookBody), mpc.DefaultWebhookTolerance, now); err == nil {
		t.Fatal("an old timestamp passed")
	}
	if err := mpc.VerifyWebhook("other", webhookBody, strconv.FormatInt(ts, 10), sign(ts, webhookBody), mpc.DefaultWebhookTolerance, now); err == nil {
		t.Fatal("a wrong secret passed")
	}
}
