package fhir

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Sink delivers an approved note to the patient record. Deliver must be idempotent for a
// given Note.DocumentID: the outbox calls it again after a crash or a retryable failure.
type Sink interface {
	Deliver(ctx context.Context, n Note) (Receipt, error)
}

// Receipt says where a delivered document landed.
type Receipt struct {
	// Location is the server URL or file path of the delivered resource.
	Location string `json:"location"`
	// Created is false when the document was already there (a repeated delivery).
	Created bool `json:"created"`
	// HTTPStatus is the EPR's answer to the create (0 for sinks that are not HTTP).
	HTTPStatus int `json:"http_status,omitempty"`
	// Pending is true when the note was handed over (a file written for an engine to
	// collect, a message accepted by MESH) but the record has not confirmed it yet: the
	// sink's Acknowledgements report the outcome later. Reason says what it waits for.
	Pending bool   `json:"pending,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Acknowledger is a Sink whose deliveries are confirmed after Deliver returns (Pending
// receipts). The outbox calls Acknowledgements with the notes still waiting, from time to
// time and never concurrently with itself.
type Acknowledger interface {
	Acknowledgements(ctx context.Context, waiting []Waiting) ([]Ack, error)
}

// Waiting is a note handed over and not yet acknowledged.
type Waiting struct {
	DocumentID string
	// Location is what the Pending receipt named (a file path, a MESH message id).
	Location string
	Since    time.Time
}

// AckOutcome is what the receiver said about a note.
type AckOutcome string

const (
	AckFiled   AckOutcome = "filed"   // in the record (or collected by the engine that files it)
	AckRefused AckOutcome = "refused" // refused for good: held for a person, with Reason
	AckResend  AckOutcome = "resend"  // a transient failure at the receiver: deliver again
	AckWaiting AckOutcome = "waiting" // still waiting; Reason may say more (e.g. downloaded)
)

// Ack is the receiver's answer about one note.
type Ack struct {
	DocumentID string
	Outcome    AckOutcome
	Reason     string
	Location   string // where it was filed, when known
}

// DeliveryError classifies a failed delivery for the outbox: Permanent failures are held
// for a person to act on, the rest are retried with backoff.
type DeliveryError struct {
	Permanent bool
	// RetryAfter is the server's requested delay (HTTP Retry-After), zero when none.
	RetryAfter time.Duration
	// Reason is shown to clinicians and administrators; it names the problem and what to do.
	Reason string
	Err    error
	// HTTPStatus is the status of the EPR reply that failed, 0 when there was none.
	HTTPStatus int
}

func (e *DeliveryError) Error() string {
	if e.Err == nil {
		return e.Reason
	}
	return e.Reason + ": " + e.Err.Error()
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Permanent is a failure a person must act on: the outbox holds the note with reason.
func Permanent(reason string, err error) error { return permanent(reason, err) }

// Retryable is a failure that may clear by itself: the outbox tries again later (after
// retryAfter when the receiver asked for a wait).
func Retryable(reason string, retryAfter time.Duration, err error) error {
	return retryable(reason, retryAfter, err)
}

// permanent marks a failure that repeating cannot fix.
func permanent(reason string, err error) error {
	return &DeliveryError{Permanent: true, Reason: reason, Err: err}
}

// retryable marks a failure that may clear by itself (network, overload).
func retryable(reason string, retryAfter time.Duration, err error) error {
	return &DeliveryError{Reason: reason, RetryAfter: retryAfter, Err: err}
}

// IsPermanent reports whether err is a failure the outbox must hold rather than retry.
// Validation errors are permanent; unclassified errors (I/O, network) are not.
func IsPermanent(err error) bool {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return true
	}
	var de *DeliveryError
	return errors.As(err, &de) && de.Permanent
}

// RetryAfter returns the delay a server asked for, if any.
func RetryAfter(err error) (time.Duration, bool) {
	var de *DeliveryError
	if errors.As(err, &de) && de.RetryAfter > 0 {
		return de.RetryAfter, true
	}
	return 0, false
}

// HTTPStatus returns the HTTP status of the reply behind a failed delivery, 0 if none.
func HTTPStatus(err error) int {
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.HTTPStatus
	}
	return 0
}

// Reason returns the user-facing text for a failed delivery.
func Reason(err error) string {
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Error()
	}
	var de *DeliveryError
	if errors.As(err, &de) {
		return de.Reason
	}
	return err.Error()
}

// MaxRetryAfter caps the wait a server may ask for: a note is never parked for longer on
// one server's say-so (a year-long Retry-After would silently hold it for a year).
const MaxRetryAfter = time.Hour

// retryAfter reads an HTTP Retry-After header (delay-seconds or an HTTP date), caps it at
// MaxRetryAfter and returns the wait with a note for the reason people see.
func retryAfter(h string, now time.Time) (time.Duration, string) {
	d := parseRetryAfter(h, now)
	switch {
	case d > MaxRetryAfter:
		return MaxRetryAfter, fmt.Sprintf("; it asked to wait %v (Retry-After), scribe waits at most %v", d, MaxRetryAfter)
	case d > 0:
		return d, fmt.Sprintf("; it asked to wait %v (Retry-After)", d)
	}
	return 0, ""
}

// parseRetryAfter reads an HTTP Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(h string, now time.Time) time.Duration {
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil && secs > 0 {
		return time.Duration(min(secs, int64(100*365*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
