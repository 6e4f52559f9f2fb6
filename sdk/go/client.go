// Package mpc is the Go SDK of MPC-System (integration guide §5.3): a wallet back end's client
// of the Account Service, the one base URL it needs (the device operations are relayed from
// there to the Server Party API). Standard library only.
//
//	client := mpc.NewClient(&mpc.Config{
//		BaseURL: "http://mpc-account-service:4000",
//		APIKey:  "your_api_key",
//		Timeout: 5 * time.Minute,
//	})
//
// Every call honours its context. Errors are *mpc.Error (errors.As) with the API's stable Code,
// the HTTP Status and the Message. 429 and 503 are retried after Retry-After (MaxRetries
// times); keygen and sign are also retried after a connection error under one automatic
// Idempotency-Key, so a retry never creates a second session.
package mpc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxWait is the longest long poll the API accepts on a session (?wait=).
const MaxWait = 60 * time.Second

// Config says where the Account Service is and how to authenticate.
type Config struct {
	// BaseURL is the Account Service, e.g. "http://mpc-account-service:4000".
	BaseURL string
	// APIKey is sent as X-API-Key.
	APIKey string
	// AccessToken, when set, is sent as "Authorization: Bearer" instead of the key: a device's
	// scoped token, good for its account's device operations only.
	AccessToken string
	// Timeout bounds each HTTP request (default 5 minutes); the context can bound it further.
	Timeout time.Duration
	// MaxRetries after 429/503 (and connection errors for keygen and sign). Default 3;
	// negative turns retries off.
	MaxRetries int
	// HTTPClient replaces the default client (its Timeout is then the caller's business).
	HTTPClient *http.Client
}

// Client is safe for concurrent use.
type Client struct {
	base       string
	apiKey     string
	token      string
	timeout    time.Duration
	maxRetries int
	http       *http.Client
}

// NewClient returns a client for cfg (the guide's mpc.NewClient(&mpc.Config{...})).
func NewClient(cfg *Config) *Client {
	c := &Client{
		base:       strings.TrimRight(cfg.BaseURL, "/"),
		apiKey:     cfg.APIKey,
		token:      cfg.AccessToken,
		timeout:    cfg.Timeout,
		maxRetries: cfg.MaxRetries,
		http:       cfg.HTTPClient,
	}
	if c.timeout <= 0 {
		c.timeout = 5 * time.Minute
	}
	if c.maxRetries == 0 {
		c.maxRetries = 3
	} else if c.maxRetries < 0 {
		c.maxRetries = 0
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: c.timeout}
	}
	return c
}

type call struct {
	method     string
	path       string
	body       interface{}
	idempotent bool
	// timeout, when set, replaces the client's per-request bound (long polls).
	timeout time.Duration
}

func idempotencyKey() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return fmt.Sprintf("mpc-go-%d", time.Now().UnixNano())
	}
	return "mpc-go-" + hex.EncodeToString(b)
}

func backoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << uint(attempt-1)
	if d > 10*time.Second || d <= 0 {
		d = 10 * time.Second
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

func clientError(code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

func (c *Client) do(ctx context.Context, req call, out interface{}) error {
	var payload []byte
	if req.body != nil {
		var err error
		if payload, err = json.Marshal(req.body); err != nil {
			return clientError("invalid_argument", err.Error(), err)
		}
	}
	key := ""
	if req.idempotent {
		key = idempotencyKey()
	}
	for attempt := 1; ; attempt++ {
		retriesLeft := attempt <= c.maxRetries
		reqCtx, cancel := ctx, context.CancelFunc(func() {})
		if req.timeout > 0 {
			reqCtx, cancel = context.WithTimeout(ctx, req.timeout)
		}
		status, header, body, err := c.send(reqCtx, req, payload, key)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return clientError("timeout", ctx.Err().Error(), ctx.Err())
			}
			var netErr interface{ Timeout() bool }
			if errors.As(err, &netErr) && netErr.Timeout() {
				return clientError("timeout", fmt.Sprintf("%s %s: %v", req.method, req.path, err), err)
			}
			if req.idempotent && retriesLeft {
				if err := sleep(ctx, backoff(attempt)); err != nil {
					return clientError("timeout", err.Error(), err)
				}
				continue
			}
			return clientError("connection_error", fmt.Sprintf("%s %s: %v", req.method, req.path, err), err)
		}
		if (status == 429 || status == 503) && retriesLeft {
			wait := retryAfter(header)
			if wait == 0 {
				wait = backoff(attempt)
			}
			if err := sleep(ctx, wait); err != nil {
				return clientError("timeout", err.Error(), err)
			}
			continue
		}
		if status >= 200 && status < 300 {
			if err := json.Unmarshal(body, out); err != nil {
				return clientError("invalid_response", fmt.Sprintf("%s %s: %v", req.method, req.path, err), err)
			}
			return nil
		}
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		apiErr := &Error{Code: e.Error.Code, Status: status, Message: e.Error.Message, RetryAfter: retryAfter(header)}
		if apiErr.Code == "" {
			apiErr.Code = "unknown"
		}
		if apiErr.Message == "" {
			apiErr.Message = http.StatusText(status)
		}
		return apiErr
	}
}

func (c *Client) send(ctx context.Context, req call, payload []byte, key string) (int, http.Header, []byte, error) {
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	r, err := http.NewRequestWithContext(ctx, req.method, c.base+req.path, body)
	if err != nil {
		return 0, nil, nil, err
	}
	if payload != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		r.Header.Set("Authorization", "Bearer "+c.token)
	} else {
		r.Header.Set("X-API-Key", c.apiKey)
	}
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(r)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

func checkHash(h string) error {
	bare := strings.TrimPrefix(strings.TrimSpace(h), "0x")
	if b, err := hex.DecodeString(bare); err != nil || len(b) != 32 {
		return &Error{Code: "invalid_message_hash", Message: "message_hash must be 32 bytes as 64 hex characters"}
	}
	return nil
}

// CreateKeygen creates a wallet account and its keygen session (guide §5.1 step 1).
func (c *Client) CreateKeygen(ctx context.Context, req *KeygenRequest) (*KeygenResponse, error) {
	var out KeygenResponse
	err := c.do(ctx, call{method: "POST", path: "/api/v1/mpc/keygen", body: req, idempotent: true}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GenerateUserShare is the device's part of the keygen (guide §5.1 step 2): it returns when
// the key exists, with the device's share.
func (c *Client) GenerateUserShare(ctx context.Context, req *GenerateUserShareRequest) (*GenerateUserShareResponse, error) {
	var out GenerateUserShareResponse
	if err := c.do(ctx, call{method: "POST", path: "/api/v1/keygen/generate-user-share", body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartSign creates a sign session (guide §5.2 step 2) and returns it as created; with a
// participant's ShareData it is already signed.
func (c *Client) StartSign(ctx context.Context, req *SignRequest) (*SignSession, error) {
	if err := checkHash(req.MessageHash); err != nil {
		return nil, err
	}
	var out SignSession
	if err := c.do(ctx, call{method: "POST", path: "/api/v1/mpc/sign", body: req, idempotent: true}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateSign signs (guide §5.3): with a device's ShareData in one call; with server parties
// only it waits for the session. It returns once signed; a session that fails is an *Error
// with Code "session_failed" (or "session_expired").
func (c *Client) CreateSign(ctx context.Context, req *SignRequest) (*SignResponse, error) {
	s, err := c.StartSign(ctx, req)
	if err != nil {
		return nil, err
	}
	if s.Signature != nil && s.R != nil && s.S != nil && s.V != nil {
		return &SignResponse{Signature: *s.Signature, R: *s.R, S: *s.S, V: *s.V, SessionID: s.SessionID}, nil
	}
	done, err := c.WaitForSession(ctx, s.SessionID)
	if err != nil {
		return nil, err
	}
	return signatureOf(done)
}

func signatureOf(s *Session) (*SignResponse, error) {
	if s.Status == "completed" && s.Signature != nil && s.R != nil && s.S != nil && s.V != nil {
		return &SignResponse{Signature: *s.Signature, R: *s.R, S: *s.S, V: *s.V, SessionID: s.SessionID}, nil
	}
	e := &Error{Code: "session_failed", Message: "session " + s.SessionID + " is " + s.Status}
	if s.Status == "expired" {
		e.Code = "session_expired"
	}
	if s.FailureReason != nil {
		e.Message = *s.FailureReason
	}
	if s.BlamedPartyID != nil {
		e.BlamedPartyID = *s.BlamedPartyID
	}
	return nil, e
}

// GetSession reads a session.
func (c *Client) GetSession(ctx context.Context, sessionID string) (*Session, error) {
	return c.getSession(ctx, sessionID, 0)
}

func (c *Client) getSession(ctx context.Context, sessionID string, wait time.Duration) (*Session, error) {
	path := "/api/v1/mpc/sessions/" + url.PathEscape(sessionID)
	req := call{method: "GET", path: path}
	if secs := int(wait / time.Second); secs > 0 {
		req.path += "?wait=" + strconv.Itoa(secs)
		req.timeout = wait + 30*time.Second
	}
	var out Session
	if err := c.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitForSession returns the session once it is final (long polls of at most 60 s each, no
// busy polling), until ctx is done.
func (c *Client) WaitForSession(ctx context.Context, sessionID string) (*Session, error) {
	for {
		wait := MaxWait
		if d, ok := ctx.Deadline(); ok {
			if left := time.Until(d) - time.Second; left < wait {
				wait = left
			}
		}
		if wait < time.Second {
			wait = time.Second
		}
		s, err := c.getSession(ctx, sessionID, wait)
		if err != nil {
			return nil, err
		}
		if s.Final() {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, clientError("timeout", "session "+sessionID+" is still "+s.Status, ctx.Err())
		}
	}
}

// SignWithUserShare is the device's part of a sign session (guide §5.2 step 3).
func (c *Client) SignWithUserShare(ctx context.Context, req *SignWithUserShareRequest) (*DeviceSignature, error) {
	if err := checkHash(req.MessageHash); err != nil {
		return nil, err
	}
	var out DeviceSignature
	if err := c.do(ctx, call{method: "POST", path: "/api/v1/sign/with-user-share", body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RefreshWithUserShare is the device's part of a refresh: its new share.
func (c *Client) RefreshWithUserShare(ctx context.Context, req *RefreshWithUserShareRequest) (*GenerateUserShareResponse, error) {
	var out GenerateUserShareResponse
	if err := c.do(ctx, call{method: "POST", path: "/api/v1/refresh/with-user-share", body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RecoveryNewUserShare is the device's part of a recovery.
func (c *Client) RecoveryNewUserShare(ctx context.Context, req *RecoveryNewUserShareRequest) (*GenerateUserShareResponse, error) {
	var out GenerateUserShareResponse
	if err := c.do(ctx, call{method: "POST", path: "/api/v1/recovery/new-user-share", body: req}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAccount reads an account with its share metadata.
func (c *Client) GetAccount(ctx context.Context, accountID string) (*Account, error) {
	var out Account
	if err := c.do(ctx, call{method: "GET", path: "/api/v1/accounts/" + url.PathEscape(accountID)}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAccounts lists accounts, oldest first; status "" means all.
func (c *Client) ListAccounts(ctx context.Context, status string, limit, offset int) (*AccountList, error) {
	q := url.Values{}
	q.Set("limit", strconv.Itoa(limit))
	q.Set("offset", strconv.Itoa(offset))
	if status != "" {
		q.Set("status", status)
	}
	var out AccountList
	if err := c.do(ctx, call{method: "GET", path: "/api/v1/accounts?" + q.Encode()}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func (c *Client) accountAction(ctx context.Context, accountID, action string, body, out interface{}) error {
	if body == nil {
		body = struct{}{}
	}
	return c.do(ctx, call{method: "POST", path: "/api/v1/accounts/" + url.PathEscape(accountID) + "/" + action, body: body}, out)
}

// SuspendAccount stops an account from signing.
func (c *Client) SuspendAccount(ctx context.Context, accountID string) (*Account, error) {
	var out Account
	if err := c.accountAction(ctx, accountID, "suspend", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ActivateAccount lets a suspended account sign again.
func (c *Client) ActivateAccount(ctx context.Context, accountID string) (*Account, error) {
	var out Account
	if err := c.accountAction(ctx, accountID, "activate", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RefreshAccount creates a refresh session: new shares for every party, same key.
func (c *Client) RefreshAccount(ctx context.Context, accountID string) (*SessionCreated, error) {
	var out SessionCreated
	if err := c.accountAction(ctx, accountID, "refresh", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RecoverAccount creates a recovery session: the lost share rebuilt for a new party, same key.
func (c *Client) RecoverAccount(ctx context.Context, accountID string, req *RecoverRequest) (*SessionCreated, error) {
	var out SessionCreated
	if err := c.accountAction(ctx, accountID, "recover", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateAccessToken mints a token with which a device may call the device operations of this
// account only (Config.AccessToken).
func (c *Client) CreateAccessToken(ctx context.Context, accountID string) (*AccessToken, error) {
	var out AccessToken
	if err := c.accountAction(ctx, accountID, "access-tokens", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
