// Package mesh delivers approved notes to a GP practice as GP Connect Send Document
// messages through NHS England's MESH API: an ITK3 FHIR STU3 message Bundle carrying the
// note as a PDF Binary (itk.go), sent from scribe's mailbox to the practice's, and
// followed to the record by the practice system's ITK3 acknowledgements and MESH reports
// (sink.go).
//
// MESH has no idempotency key of its own, so every send is preceded by a look-up of the
// note's local id in scribe's outbox (MESH tracking): a note sent before a crash or a lost
// reply is found there and never sent twice.
package mesh

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Workflow ids of GP Connect Send Document (consultation report and its acknowledgement).
const (
	WorkflowConsultReport    = "GPFED_CONSULT_REPORT"
	WorkflowConsultReportAck = "GPFED_CONSULT_REPORT_ACK"
)

// ClientConfig says which MESH mailbox scribe uses and how it logs in.
type ClientConfig struct {
	// URL is the MESH API base, e.g. https://msg.intspineservices.nhs.uk (plain http only
	// to this machine: the sandbox in tests).
	URL       string
	Mailbox   string
	Password  string
	SharedKey string // the environment's shared secret for the NHSMESH token
	// TLS carries the mailbox's client certificate (MESH uses mutual TLS).
	TLS       *tls.Config
	Timeout   time.Duration // per request, default 30 s
	Transport http.RoundTripper
	Now       func() time.Time
}

// Client talks to one MESH mailbox.
type Client struct {
	base *url.URL
	cfg  ClientConfig
	http *http.Client
}

// NewClient checks the configuration.
func NewClient(cfg ClientConfig) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || base.Host == "" || (base.Scheme != "https" && !(base.Scheme == "http" && isLoopback(base.Hostname()))) {
		return nil, fmt.Errorf("MESH URL %q must be https (plain http only to this machine)", cfg.URL)
	}
	if cfg.Mailbox == "" || cfg.Password == "" || cfg.SharedKey == "" {
		return nil, errors.New("MESH needs a mailbox id, its password and the shared key")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t := cfg.Transport
	if t == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			tr.TLSClientConfig = cfg.TLS.Clone()
		}
		t = tr
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{base: base, cfg: cfg, http: &http.Client{Transport: t, Timeout: cfg.Timeout, CheckRedirect: noRedirect}}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Token is the NHSMESH authorisation header: an HMAC-SHA256, keyed with the shared key,
// of mailbox:nonce:count:password:timestamp; a fresh nonce each time.
func Token(mailbox, password, sharedKey, nonce string, now time.Time) string {
	ts := now.UTC().Format("200601021504")
	mac := hmac.New(sha256.New, []byte(sharedKey))
	fmt.Fprintf(mac, "%s:%s:1:%s:%s", mailbox, nonce, password, ts)
	return fmt.Sprintf("NHSMESH %s:%s:1:%s:%s", mailbox, nonce, ts, hex.EncodeToString(mac.Sum(nil)))
}

func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Error is a MESH answer other than success.
type Error struct {
	Status      int
	Description string
	Err         error // transport error: no answer at all
}

func (e *Error) Error() string {
	if e.Err != nil {
		return "MESH could not be reached: " + e.Err.Error()
	}
	if e.Description != "" {
		return fmt.Sprintf("MESH answered HTTP %d: %s", e.Status, e.Description)
	}
	return fmt.Sprintf("MESH answered HTTP %d", e.Status)
}

func (e *Error) Unwrap() error { return e.Err }

type reply struct {
	status int
	header http.Header
	body   []byte
}

const maxReply = 32 << 20

func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, body []byte) (reply, error) {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + "/messageexchange/" + url.PathEscape(c.cfg.Mailbox) + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return reply{}, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", Token(c.cfg.Mailbox, c.cfg.Password, c.cfg.SharedKey, newNonce(), c.cfg.Now()))
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/vnd.mesh.v2+json")
	}
	req.Header.Set("Mex-ClientVersion", "scribe")
	req.Header.Set("Mex-OSName", "Linux")
	resp, err := c.http.Do(req)
	if err != nil {
		return reply{}, &Error{Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		return reply{}, &Error{Err: err}
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// fail turns a non-success reply into an *Error with MESH's own description.
func fail(r reply) error {
	var e struct {
		ErrorDescription string `json:"errorDescription"`
		Detail           any    `json:"detail"`
		Message          string `json:"message"`
	}
	_ = json.Unmarshal(r.body, &e)
	d := e.ErrorDescription
	if d == "" && e.Message != "" {
		d = e.Message
	}
	if d == "" && e.Detail != nil {
		d = fmt.Sprint(e.Detail)
	}
	return &Error{Status: r.status, Description: d}
}

// Message is one message to send.
type Message struct {
	To          string
	WorkflowID  string
	LocalID     string
	Subject     string
	FileName    string
	ContentType string
	Body        []byte
}

// Send posts a message to scribe's outbox and returns MESH's message id.
func (c *Client) Send(ctx context.Context, m Message) (string, error) {
	hdr := http.Header{}
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Mex-From", c.cfg.Mailbox)
	hdr.Set("Mex-To", m.To)
	hdr.Set("Mex-WorkflowID", m.WorkflowID)
	hdr.Set("Mex-LocalID", m.LocalID)
	hdr.Set("Mex-Subject", m.Subject)
	hdr.Set("Mex-FileName", m.FileName)
	hdr.Set("Mex-Content-Type", m.ContentType)
	sum := sha256.Sum256(m.Body)
	hdr.Set("Mex-Content-Checksum", "sha256:"+hex.EncodeToString(sum[:]))
	r, err := c.do(ctx, http.MethodPost, "/outbox", hdr, m.Body)
	if err != nil {
		return "", err
	}
	if r.status != http.StatusAccepted {
		return "", fail(r)
	}
	var v struct {
		MessageID   string `json:"message_id"`
		MessageIDv1 string `json:"messageID"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || (v.MessageID == "" && v.MessageIDv1 == "") {
		return "", &Error{Status: r.status, Description: "no message id in the reply"}
	}
	if v.MessageID == "" {
		v.MessageID = v.MessageIDv1
	}
	return v.MessageID, nil
}

// Tracked is what MESH says about a message scribe sent.
type Tracked struct {
	MessageID string `json:"messageId"`
	LocalID   string `json:"localId"`
	Status    string `json:"status"`
	Recipient string `json:"recipient"`
}

// ErrSeveral means more than one sent message carries a local id.
var ErrSeveral = errors.New("several MESH messages carry this local id")

// FindByLocalID looks a sent message up by its local id: nil when MESH has none.
func (c *Client) FindByLocalID(ctx context.Context, localID string) (*Tracked, error) {
	r, err := c.do(ctx, http.MethodGet, "/outbox/tracking/"+url.PathEscape(localID), http.Header{"Accept": {"application/json"}}, nil)
	if err != nil {
		return nil, err
	}
	switch r.status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, nil
	case http.StatusMultipleChoices:
		return nil, ErrSeveral
	default:
		return nil, fail(r)
	}
	var t Tracked
	if err := json.Unmarshal(r.body, &t); err != nil || t.MessageID == "" {
		return nil, &Error{Status: r.status, Description: "unreadable tracking reply"}
	}
	return &t, nil
}

// Inbox lists the ids of messages waiting in scribe's inbox.
func (c *Client) Inbox(ctx context.Context) ([]string, error) {
	r, err := c.do(ctx, http.MethodGet, "/inbox", nil, nil)
	if err != nil {
		return nil, err
	}
	if r.status != http.StatusOK {
		return nil, fail(r)
	}
	var v struct {
		Messages []string `json:"messages"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		return nil, &Error{Status: r.status, Description: "unreadable inbox"}
	}
	return v.Messages, nil
}

// Received is a downloaded message: MESH's headers and the body.
type Received struct {
	ID          string
	Type        string // DATA or REPORT
	WorkflowID  string
	LocalID     string
	LinkedMsgID string // reports: the message they are about
	StatusCode  string
	StatusText  string
	From        string
	Body        []byte
}

// Download fetches one inbox message (single chunk: acknowledgements and reports are small).
func (c *Client) Download(ctx context.Context, id string) (Received, error) {
	r, err := c.do(ctx, http.MethodGet, "/inbox/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return Received{}, err
	}
	if r.status != http.StatusOK {
		return Received{}, fail(r)
	}
	h := r.header.Get
	return Received{ID: id, Type: strings.ToUpper(h("Mex-MessageType")), WorkflowID: h("Mex-WorkflowID"), LocalID: h("Mex-LocalID"),
		LinkedMsgID: h("Mex-LinkedMsgID"), StatusCode: h("Mex-StatusCode"), StatusText: h("Mex-StatusDescription"),
		From: h("Mex-From"), Body: r.body}, nil
}

// Acknowledge tells MESH a downloaded message is dealt with; it leaves the inbox.
func (c *Client) Acknowledge(ctx context.Context, id string) error {
	r, err := c.do(ctx, http.MethodPut, "/inbox/"+url.PathEscape(id)+"/status/acknowledged", nil, nil)
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return fail(r)
	}
	return nil
}
