package mpc

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// DefaultWebhookTolerance is how far a delivery's X-MPC-Timestamp may be from now.
const DefaultWebhookTolerance = 5 * time.Minute

// ErrWebhookVerification: the delivery's signature or timestamp is not acceptable.
var ErrWebhookVerification = errors.New("mpc: webhook verification failed")

// VerifyWebhook checks a webhook delivery: signature is X-MPC-Signature, "v1=" and the lowercase
// hex HMAC-SHA256 under secret of timestamp (X-MPC-Timestamp, Unix seconds), ".", and the raw
// body; timestamp must be within tolerance of now. The comparison is constant-time.
func VerifyWebhook(secret string, body []byte, timestamp, signature string, tolerance time.Duration, now time.Time) error {
	ts, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return ErrWebhookVerification
	}
	age := now.Unix() - ts
	if age < 0 {
		age = -age
	}
	if time.Duration(age)*time.Second > tolerance {
		return ErrWebhookVerification
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	mac.Write(body)
	expected := "v1=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(expected), []byte(strings.TrimSpace(signature))) {
		return ErrWebhookVerification
	}
	return nil
}
