package mpc

import (
	"fmt"
	"time"
)

// Error is every error of the API: its stable Code (e.g. "session_not_found"), the HTTP
// Status and a Message in the guide's words. Use errors.As(err, &e) with e *mpc.Error.
//
// Client-side failures have Status 0 and the codes "connection_error", "timeout",
// "invalid_response", "invalid_argument"; a session that ended without a result has
// "session_failed" or "session_expired".
type Error struct {
	Code    string
	Status  int
	Message string
	// RetryAfter is the API's Retry-After on 429 and 503.
	RetryAfter time.Duration
	// BlamedPartyID names the party a failed session blames, if any.
	BlamedPartyID string
	// Err is the underlying transport or decoding error, if any.
	Err error
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s (%s, HTTP %d)", e.Message, e.Code, e.Status)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// Unwrap gives the underlying error (e.g. context.DeadlineExceeded).
func (e *Error) Unwrap() error { return e.Err }

// Throttled reports a 429: retry after RetryAfter.
func (e *Error) Throttled() bool { return e.Status == 429 }
