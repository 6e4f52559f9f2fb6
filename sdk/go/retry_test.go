package mpc_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	mpc "github.com/rwadurian/mpc-client-sdk-go"
)

// The retry rules against a small server that plays the API's overload answers.
func TestThrottledKeygenIsRetriedUnderOneIdempotencyKey(t *testing.T) {
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		n := len(keys)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n < 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
			_, _ = w.Write([]byte(`{"error":{"code":"overloaded","message":"too many requests"}}`))
			return
		}
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"session_id":"s","session_type":"keygen","threshold_n":2,"threshold_t":2,"join_tokens":{"d":"t"},"status":"created","account_id":"a","expires_at":"x"}`))
	}))
	defer srv.Close()
	c := mpc.NewClient(&mpc.Config{BaseURL: srv.URL, APIKey: "k", Timeout: 10 * time.Second})
	resp, err := c.CreateKeygen(context.Background(), &mpc.KeygenRequest{ThresholdN: 2, ThresholdT: 2})
	if err != nil || resp.AccountID != "a" {
		t.Fatalf("%v %+v", err, resp)
	}
	if len(keys) != 3 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Fatalf("keys %q", keys)
	}

	none := mpc.NewClient(&mpc.Config{BaseURL: srv.URL, APIKey: "k", MaxRetries: -1})
	mu.Lock()
	keys = nil
	mu.Unlock()
	_, err = none.CreateKeygen(context.Background(), &mpc.KeygenRequest{})
	var e *mpc.Error
	if !errors.As(err, &e) || !e.Throttled() || e.Code != "overloaded" || len(keys) != 1 {
		t.Fatalf("without retries: %v (%d requests)", err, len(keys))
	}
}
