package mpc_test

// The SDK against a live `mpc up` (ephemeral loopback ports, a fresh data directory), through
// the Account Service only. Every signature is checked with the independent verifier of
// secp256k1_test.go. The binary is $MPC_BIN, else target/debug/mpc of this repository.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	mpc "github.com/rwadurian/mpc-client-sdk-go"
)

type system struct {
	url, apiKey string
}

func mpcBinary(t *testing.T) string {
	if b := os.Getenv("MPC_BIN"); b != "" {
		return b
	}
	for _, profile := range []string{"debug", "release"} {
		b, _ := filepath.Abs(filepath.Join("..", "..", "target", profile, "mpc"))
		if _, err := os.Stat(b); err == nil {
			return b
		}
	}
	t.Fatal("no mpc binary: cargo build -p mpc-cli, or set MPC_BIN")
	return ""
}

func startSystem(t *testing.T) system {
	dir := filepath.Join(t.TempDir(), "mpc-data")
	log, err := os.Create(dir + ".log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(mpcBinary(t), "up", "--ephemeral-ports", "--host", "127.0.0.1", "--data-dir", dir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = withoutAPIKey(os.Environ())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
	})
	deadline := time.Now().Add(120 * time.Second)
	var endpoints struct {
		Account string `json:"account"`
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "endpoints.json")); err == nil && json.Unmarshal(b, &endpoints) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mpc up did not bind")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var secrets struct {
		APIKey string `json:"api_key"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "secrets.json"))
	if err != nil || json.Unmarshal(b, &secrets) != nil {
		t.Fatalf("secrets.json: %v", err)
	}
	for {
		resp, err := http.Get(endpoints.Account + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("mpc up did not become ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return system{url: endpoints.Account, apiKey: secrets.APIKey}
}

func withoutAPIKey(env []string) []string {
	out := env[:0:0]
	for _, e := range env {
		if len(e) < 12 || e[:12] != "MPC_API_KEY=" {
			out = append(out, e)
		}
	}
	return out
}

func randomHash(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func mustCheck(t *testing.T, publicKey, hash string, sig *mpc.SignResponse) {
	t.Helper()
	if err := checkSignature(publicKey, hash, sig.R, sig.S, sig.V, sig.Signature); err != nil {
		t.Fatalf("signature of %s: %v", hash, err)
	}
}

func TestTheGuidesFlowAgainstMpcUp(t *testing.T) {
	sys := startSystem(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := mpc.NewClient(&mpc.Config{BaseURL: sys.url, APIKey: sys.apiKey, Timeout: 2 * time.Minute})

	// Guide §5.3, word for word.
	keygenResp, err := client.CreateKeygen(ctx, &mpc.KeygenRequest{
		ThresholdN: 3,
		ThresholdT: 2,
		Participants: []mpc.Participant{
			{PartyID: "user_device", DeviceType: "android"},
			{PartyID: "server_party_1", DeviceType: "server"},
			{PartyID: "server_party_2", DeviceType: "server"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	shareResp, err := client.GenerateUserShare(ctx, &mpc.GenerateUserShareRequest{
		SessionID: keygenResp.SessionID,
		PartyID:   "user_device",
		JoinToken: keygenResp.JoinTokens["user_device"],
	})
	if err != nil {
		t.Fatal(err)
	}
	if shareResp.PartyIndex != 0 || shareResp.ShareData == "" || len(shareResp.PublicKey) != 130 {
		t.Fatalf("unexpected share: index %d, key %q", shareResp.PartyIndex, shareResp.PublicKey)
	}
	done, err := client.WaitForSession(ctx, keygenResp.SessionID)
	if err != nil || done.Status != "completed" {
		t.Fatalf("keygen session: %v %+v", err, done)
	}
	account, err := client.GetAccount(ctx, keygenResp.AccountID)
	if err != nil || account.Status != "active" || *account.PublicKey != shareResp.PublicKey {
		t.Fatalf("account: %v %+v", err, account)
	}

	// One call with the device's share.
	hash := randomHash(t)
	signResp, err := client.CreateSign(ctx, &mpc.SignRequest{
		AccountID:   keygenResp.AccountID,
		MessageHash: hash,
		Participants: []mpc.SignParticipant{
			{PartyID: "user_device", ShareData: shareResp.ShareData},
			{PartyID: "server_party_1"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, shareResp.PublicKey, hash, signResp)

	// Server parties only: CreateSign waits for the session.
	hash = "0x" + randomHash(t)
	signResp, err = client.CreateSign(ctx, &mpc.SignRequest{
		AccountID:    keygenResp.AccountID,
		MessageHash:  hash,
		Participants: []mpc.SignParticipant{{PartyID: "server_party_1"}, {PartyID: "server_party_2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, shareResp.PublicKey, hash, signResp)
	session, err := client.GetSession(ctx, signResp.SessionID)
	if err != nil || session.Status != "completed" || *session.R != signResp.R {
		t.Fatalf("session: %v %+v", err, session)
	}

	// A device with an access token, through the relay.
	token, err := client.CreateAccessToken(ctx, keygenResp.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	hash = randomHash(t)
	started, err := client.StartSign(ctx, &mpc.SignRequest{
		AccountID:    keygenResp.AccountID,
		MessageHash:  hash,
		Participants: []mpc.SignParticipant{{PartyID: "user_device"}, {PartyID: "server_party_2"}},
	})
	if err != nil || started.Status != "created" || started.Signature != nil {
		t.Fatalf("start sign: %v %+v", err, started)
	}
	device := mpc.NewClient(&mpc.Config{BaseURL: sys.url, AccessToken: token.AccessToken})
	answer, err := device.SignWithUserShare(ctx, &mpc.SignWithUserShareRequest{
		SessionID: started.SessionID, PartyID: "user_device", JoinToken: started.JoinTokens["user_device"],
		ShareData: shareResp.ShareData, MessageHash: hash,
	})
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, shareResp.PublicKey, hash, &mpc.SignResponse{Signature: answer.Signature, R: answer.R, S: answer.S, V: answer.V})
	var e *mpc.Error
	if _, err := device.ListAccounts(ctx, "", 10, 0); !errors.As(err, &e) || e.Status != 401 || e.Code != "invalid_api_key" {
		t.Fatalf("a device token listing accounts: %v", err)
	}

	// Refresh: the device's new share signs.
	refresh, err := client.RefreshAccount(ctx, keygenResp.AccountID)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := client.RefreshWithUserShare(ctx, &mpc.RefreshWithUserShareRequest{
		SessionID: refresh.SessionID, PartyID: "user_device", JoinToken: refresh.JoinTokens["user_device"],
		ShareData: shareResp.ShareData,
	})
	if err != nil || renewed.PublicKey != shareResp.PublicKey || renewed.ShareData == shareResp.ShareData {
		t.Fatalf("refresh: %v", err)
	}
	if _, err := client.WaitForSession(ctx, refresh.SessionID); err != nil {
		t.Fatal(err)
	}
	hash = randomHash(t)
	signResp, err = client.CreateSign(ctx, &mpc.SignRequest{
		AccountID:   keygenResp.AccountID,
		MessageHash: hash,
		Participants: []mpc.SignParticipant{
			{PartyID: "user_device", ShareData: renewed.ShareData},
			{PartyID: "server_party_2"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, shareResp.PublicKey, hash, signResp)

	// Typed errors.
	if _, err := client.SuspendAccount(ctx, keygenResp.AccountID); err != nil {
		t.Fatal(err)
	}
	_, err = client.CreateSign(ctx, &mpc.SignRequest{
		AccountID: keygenResp.AccountID, MessageHash: randomHash(t),
		Participants: []mpc.SignParticipant{{PartyID: "server_party_1"}, {PartyID: "server_party_2"}},
	})
	if !errors.As(err, &e) || e.Status != 403 || e.Code != "account_suspended" {
		t.Fatalf("suspended: %v", err)
	}
	if _, err := client.ActivateAccount(ctx, keygenResp.AccountID); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetSession(ctx, "5f1c0a52-95cc-4a8d-9f86-0d5d2b6c1e70")
	if !errors.As(err, &e) || e.Status != 404 || e.Code != "session_not_found" || e.Message != "session not found" {
		t.Fatalf("unknown session: %v", err)
	}
	list, err := client.ListAccounts(ctx, "active", 100, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range list.Accounts {
		found = found || a.AccountID == keygenResp.AccountID
	}
	if !found {
		t.Fatal("the account is not listed")
	}

	// Context cancellation ends a call at once.
	cancelled, stop := context.WithCancel(ctx)
	stop()
	if _, err := client.GetSession(cancelled, signResp.SessionID); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled context: %v", err)
	}
}
