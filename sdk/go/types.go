package mpc

// Participant is a party of a new key (guide §5.3): DeviceType is "server", "recovery", or the
// device's platform ("android", "ios", …).
type Participant struct {
	PartyID    string `json:"party_id"`
	DeviceType string `json:"device_type,omitempty"`
}

// KeygenRequest is POST /api/v1/mpc/keygen.
type KeygenRequest struct {
	ThresholdN   int           `json:"threshold_n"`
	ThresholdT   int           `json:"threshold_t"`
	Participants []Participant `json:"participants"`
	Username     string        `json:"username,omitempty"`
	Email        string        `json:"email,omitempty"`
}

// KeygenResponse is the keygen session just created and its (pending) account.
type KeygenResponse struct {
	SessionID   string `json:"session_id"`
	SessionType string `json:"session_type"`
	ThresholdN  int    `json:"threshold_n"`
	ThresholdT  int    `json:"threshold_t"`
	// JoinTokens maps party id → join token. Secret: hand each to its party only.
	JoinTokens map[string]string `json:"join_tokens"`
	Status     string            `json:"status"`
	AccountID  string            `json:"account_id"`
	ExpiresAt  string            `json:"expires_at"`
}

// GenerateUserShareRequest is the device's part of a keygen (guide §5.1 step 2).
type GenerateUserShareRequest struct {
	SessionID string `json:"session_id"`
	PartyID   string `json:"party_id"`
	JoinToken string `json:"join_token"`
	// UserPublicKey (P-256, SEC1 hex) seals the share to the device.
	UserPublicKey string `json:"user_public_key,omitempty"`
}

// GenerateUserShareResponse is the device's share (also the answer of refresh and recovery).
type GenerateUserShareResponse struct {
	Success    bool   `json:"success"`
	SessionID  string `json:"session_id"`
	PartyID    string `json:"party_id"`
	PartyIndex int    `json:"party_index"`
	// ShareData is hex. Secret: store it on the device.
	ShareData string `json:"share_data"`
	// PublicKey is the group key, uncompressed ("04…"), hex.
	PublicKey string `json:"public_key"`
}

// SignParticipant is a signer; with ShareData (the device's stored share) the Account
// Service signs in one call.
type SignParticipant struct {
	PartyID   string `json:"party_id"`
	ShareData string `json:"share_data,omitempty"`
}

// SignRequest is POST /api/v1/mpc/sign.
type SignRequest struct {
	AccountID string `json:"account_id"`
	// MessageHash is 32 bytes as 64 hex characters ("0x" accepted).
	MessageHash  string            `json:"message_hash"`
	Participants []SignParticipant `json:"participants"`
}

// SignResponse is a signature (guide §3.2): DER hex, R and S (32 bytes hex, low-s), V (0/1)
// such that ecrecover(hash, R, S, V) is the group key.
type SignResponse struct {
	Signature string `json:"signature"`
	R         string `json:"r"`
	S         string `json:"s"`
	V         int    `json:"v"`
	SessionID string `json:"session_id"`
}

// SignSession is a sign session just created; with a participant's ShareData it is completed
// and carries the signature.
type SignSession struct {
	SessionID   string            `json:"session_id"`
	SessionType string            `json:"session_type"`
	AccountID   string            `json:"account_id"`
	MessageHash string            `json:"message_hash"`
	ThresholdT  int               `json:"threshold_t"`
	JoinTokens  map[string]string `json:"join_tokens"`
	Status      string            `json:"status"`
	ExpiresAt   string            `json:"expires_at"`
	Signature   *string           `json:"signature,omitempty"`
	R           *string           `json:"r,omitempty"`
	S           *string           `json:"s,omitempty"`
	V           *int              `json:"v,omitempty"`
}

// SessionParticipant is a participant of a session.
type SessionParticipant struct {
	PartyID    string  `json:"party_id"`
	PartyIndex int     `json:"party_index"`
	DeviceType *string `json:"device_type"`
	Status     string  `json:"status"`
	JoinedAt   *string `json:"joined_at"`
}

// Session is GET /api/v1/mpc/sessions/{id}.
type Session struct {
	SessionID       string               `json:"session_id"`
	SessionType     string               `json:"session_type"`
	Status          string               `json:"status"`
	ThresholdN      int                  `json:"threshold_n"`
	ThresholdT      int                  `json:"threshold_t"`
	AccountID       *string              `json:"account_id"`
	Participants    []SessionParticipant `json:"participants"`
	MessageHash     *string              `json:"message_hash"`
	PublicKey       *string              `json:"public_key"`
	EthereumAddress *string              `json:"ethereum_address"`
	Signature       *string              `json:"signature"`
	R               *string              `json:"r"`
	S               *string              `json:"s"`
	V               *int                 `json:"v"`
	FailureReason   *string              `json:"failure_reason"`
	BlamedPartyID   *string              `json:"blamed_party_id"`
	CreatedAt       *string              `json:"created_at"`
	ExpiresAt       *string              `json:"expires_at"`
	CompletedAt     *string              `json:"completed_at"`
}

// Final reports whether the session is completed, failed or expired.
func (s *Session) Final() bool {
	return s.Status == "completed" || s.Status == "failed" || s.Status == "expired"
}

// ShareInfo says where a share lives; never the share.
type ShareInfo struct {
	PartyID         string  `json:"party_id"`
	PartyIndex      int     `json:"party_index"`
	ShareType       string  `json:"share_type"`
	DeviceType      *string `json:"device_type"`
	StorageLocation *string `json:"storage_location"`
	IsActive        bool    `json:"is_active"`
	CreatedAt       string  `json:"created_at"`
}

// Account is a wallet account.
type Account struct {
	AccountID       string      `json:"account_id"`
	Username        *string     `json:"username"`
	Email           *string     `json:"email"`
	Status          string      `json:"status"`
	ThresholdN      int         `json:"threshold_n"`
	ThresholdT      int         `json:"threshold_t"`
	PublicKey       *string     `json:"public_key"`
	EthereumAddress *string     `json:"ethereum_address"`
	KeygenSessionID *string     `json:"keygen_session_id"`
	FailureReason   *string     `json:"failure_reason"`
	CreatedAt       string      `json:"created_at"`
	UpdatedAt       string      `json:"updated_at"`
	Shares          []ShareInfo `json:"shares,omitempty"`
}

// AccountList is a page of accounts.
type AccountList struct {
	Accounts []Account `json:"accounts"`
	Total    int       `json:"total"`
	Limit    int       `json:"limit"`
	Offset   int       `json:"offset"`
}

// SessionCreated is a refresh or recovery session just created.
type SessionCreated struct {
	SessionID   string            `json:"session_id"`
	SessionType string            `json:"session_type"`
	AccountID   string            `json:"account_id"`
	ThresholdN  int               `json:"threshold_n"`
	ThresholdT  int               `json:"threshold_t"`
	JoinTokens  map[string]string `json:"join_tokens"`
	Status      string            `json:"status"`
	ExpiresAt   string            `json:"expires_at"`
}

// RecoverRequest is POST /api/v1/accounts/{id}/recover.
type RecoverRequest struct {
	LostPartyID string   `json:"lost_party_id"`
	NewPartyID  string   `json:"new_party_id"`
	DeviceType  string   `json:"device_type,omitempty"`
	Helpers     []string `json:"helpers,omitempty"`
}

// AccessToken is a scoped token for one account's device operations.
type AccessToken struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	Scope       string `json:"scope"`
	AccountID   string `json:"account_id"`
	ExpiresAt   string `json:"expires_at"`
}

// SignWithUserShareRequest is the device's part of a sign session.
type SignWithUserShareRequest struct {
	SessionID   string `json:"session_id"`
	PartyID     string `json:"party_id"`
	JoinToken   string `json:"join_token"`
	ShareData   string `json:"share_data"`
	MessageHash string `json:"message_hash"`
}

// DeviceSignature is the answer of sign/with-user-share.
type DeviceSignature struct {
	Success   bool   `json:"success"`
	SessionID string `json:"session_id"`
	PartyID   string `json:"party_id"`
	Signature string `json:"signature"`
	R         string `json:"r"`
	S         string `json:"s"`
	V         int    `json:"v"`
}

// RefreshWithUserShareRequest is the device's part of a refresh.
type RefreshWithUserShareRequest struct {
	SessionID     string `json:"session_id"`
	PartyID       string `json:"party_id"`
	JoinToken     string `json:"join_token"`
	ShareData     string `json:"share_data"`
	UserPublicKey string `json:"user_public_key,omitempty"`
}

// RecoveryNewUserShareRequest is the device's part of a recovery (no ShareData: the device is
// the new holder of the lost index).
type RecoveryNewUserShareRequest struct {
	SessionID     string `json:"session_id"`
	PartyID       string `json:"party_id"`
	JoinToken     string `json:"join_token"`
	ShareData     string `json:"share_data,omitempty"`
	UserPublicKey string `json:"user_public_key,omitempty"`
}
