package fhir

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	r4 "github.com/samply/golang-fhir-models/fhir-models/fhir"
	"golang.org/x/oauth2"

	"scribe/internal/nhsnumber"
)

// ServerConfig configures delivery to an R4 FHIR server.
type ServerConfig struct {
	// BaseURL is the FHIR base, e.g. https://epr.example/fhir/R4.
	BaseURL string
	Config  Config
	// LookupPatient resolves the NHS number to the server's Patient first and holds the
	// note when there is no single match.
	LookupPatient bool

	// Authentication: at most one of BearerToken and SMART; TLS may carry a client
	// certificate for mutual TLS on its own or alongside either.
	BearerToken string
	SMART       *SMARTConfig
	TLS         *tls.Config

	// Timeout bounds each HTTP exchange (default 30 s).
	Timeout time.Duration
	// Transport replaces the default transport (tests, proxies); TLS is then ignored.
	Transport http.RoundTripper
}

// ServerSink delivers notes to a FHIR server so that repeating a delivery never creates a
// second DocumentReference: conditional create where the server declares it
// (CapabilityStatement conditionalCreate), a search by identifier before the create where
// it does not, and always after an attempt whose outcome is unknown. It never follows a
// redirect and sends nothing to any origin but the configured ones.
type ServerSink struct {
	base   *url.URL
	cfg    ServerConfig
	client *http.Client
	now    func() time.Time

	mu sync.Mutex
	// conditional is the server's declared conditionalCreate for DocumentReference, nil
	// until the CapabilityStatement has been read.
	conditional *bool
	// ambiguous holds the document ids whose last create had no definite answer (the
	// connection dropped, a timeout, a 5xx): the next attempt searches before posting.
	ambiguous map[string]bool
}

// NewServerSink checks the configuration and prepares the HTTP client.
func NewServerSink(cfg ServerConfig) (*ServerSink, error) {
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("FHIR base URL %q must be an absolute http(s) URL", cfg.BaseURL)
	}
	if err := checkIdentifierSystem(cfg.Config.IdentifierSystem); err != nil {
		return nil, err
	}
	if cfg.BearerToken != "" && cfg.SMART != nil {
		return nil, fmt.Errorf("FHIR auth: choose a static bearer token or SMART backend services, not both")
	}
	allowed := map[string]bool{origin(base): true}
	switch {
	case cfg.SMART != nil:
		if err := requireHTTPS("FHIR base URL", cfg.BaseURL); err != nil {
			return nil, err
		}
		if err := cfg.SMART.check(); err != nil {
			return nil, err
		}
		tu, _ := url.Parse(cfg.SMART.TokenURL)
		allowed[origin(tu)] = true
	case cfg.BearerToken != "" && base.Scheme != "https" && !isLoopback(base.Hostname()):
		return nil, fmt.Errorf("FHIR base URL %q must be https to carry a bearer token (plain http only to this machine)", cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	transport := cfg.Transport
	if transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			t.TLSClientConfig = cfg.TLS.Clone()
		}
		transport = t
	}
	transport = originGuard{allowed: allowed, base: transport}
	switch {
	case cfg.BearerToken != "":
		transport = bearerTransport{token: cfg.BearerToken, base: transport}
	case cfg.SMART != nil:
		tokens := &tokenCache{cfg: *cfg.SMART, client: &http.Client{Transport: transport, Timeout: cfg.Timeout, CheckRedirect: noRedirects}}
		transport = smartTransport{cache: tokens, base: transport}
	}
	return &ServerSink{
		base:      base,
		cfg:       cfg,
		client:    &http.Client{Transport: transport, Timeout: cfg.Timeout, CheckRedirect: noRedirects},
		now:       time.Now,
		ambiguous: map[string]bool{},
	}, nil
}

// noRedirects makes the client hand any 3xx back to us: a redirected write may land on
// another origin (with the token and the note) or turn into a GET whose 200 looks like
// success.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// checkIdentifierSystem refuses the placeholder identifier system for a FHIR server: the
// system is half of every note's idempotency key on the EPR, so it must be a URI the
// practice owns and never changes.
func checkIdentifierSystem(system string) error {
	if system == "" || isPlaceholderSystem(system) {
		return fmt.Errorf("epr.identifier_system must be set to a URI your practice controls (e.g. https://your-practice.example/Id/scribe-document) before notes go to a FHIR server; %q is a placeholder", DefaultIdentifierSystem)
	}
	if u, err := url.Parse(system); err != nil || u.Scheme == "" {
		return fmt.Errorf("epr.identifier_system %q is not an absolute URI", system)
	}
	return nil
}

func origin(u *url.URL) string { return strings.ToLower(u.Scheme + "://" + u.Host) }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// originGuard refuses any request to an origin other than the configured ones: patient
// data and credentials go nowhere else, whatever a server answers.
type originGuard struct {
	allowed map[string]bool
	base    http.RoundTripper
}

func (g originGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if o := origin(r.URL); !g.allowed[o] {
		return nil, fmt.Errorf("refusing to send to %s: only the configured EPR origins receive patient data or credentials", o)
	}
	return g.base.RoundTrip(r)
}

type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return b.base.RoundTrip(withBearer(r, b.token))
}

// Deliver implements Sink: optional Patient lookup, then the create — conditional where
// the server honours it, after a search where it does not or the last attempt's outcome
// is unknown — and for an amendment, marking the replaced document superseded. A
// document already on the EPR under this note's identifier counts as delivered only if it
// is this note: same patient, same text (H5).
func (s *ServerSink) Deliver(ctx context.Context, n Note) (Receipt, error) {
	if err := Validate(n, s.cfg.Config); err != nil {
		return Receipt{}, err
	}
	r := resolve(n, s.cfg.Config)
	if n.WithdrawsDocumentID != "" {
		return s.withdraw(ctx, r.identifierSystem, n.WithdrawsDocumentID)
	}
	var opts BuildOptions
	if s.cfg.LookupPatient {
		id, err := s.findPatient(ctx, n.NHSNumber)
		if err != nil {
			return Receipt{}, err
		}
		opts.PatientID = id
	}
	var old map[string]any
	if n.ReplacesDocumentID != "" {
		var err error
		old, err = s.findDocument(ctx, r.identifierSystem, n.ReplacesDocumentID)
		if err != nil {
			return Receipt{}, err
		}
		if old == nil {
			return Receipt{}, permanent("the document this amendment replaces is not on the patient record yet (deliver the original first, then retry)", nil)
		}
		opts.ReplacesID, _ = old["id"].(string)
	}
	doc, err := BuildDocumentReference(n, s.cfg.Config, opts)
	if err != nil {
		return Receipt{}, err
	}
	body, err := MarshalDocumentReference(doc)
	if err != nil {
		return Receipt{}, permanent("the document could not be encoded", err)
	}
	conditional, err := s.conditionalCreate(ctx)
	if err != nil {
		return Receipt{}, err
	}
	rc, found, err := Receipt{}, false, error(nil)
	if !conditional || s.isAmbiguous(n.DocumentID) {
		if rc, found, err = s.existing(ctx, r.identifierSystem, doc); err != nil {
			return Receipt{}, err
		}
	}
	if !found {
		if rc, err = s.create(ctx, r.identifierSystem, doc, body, conditional); err != nil {
			return Receipt{}, err
		}
	}
	if old != nil {
		if err := s.retire(ctx, old, retiredStatus(n, old)); err != nil {
			return Receipt{}, err
		}
	}
	return rc, nil
}

// withdraw marks a delivered document entered-in-error (idempotent: a second attempt finds
// it so already).
func (s *ServerSink) withdraw(ctx context.Context, system, documentID string) (Receipt, error) {
	old, err := s.findDocument(ctx, system, documentID)
	if err != nil {
		return Receipt{}, err
	}
	if old == nil {
		return Receipt{}, permanent("held: the note to withdraw is not on the patient record under its identifier (check the EPR, then retry)", nil)
	}
	if err := s.retire(ctx, old, "entered-in-error"); err != nil {
		return Receipt{}, err
	}
	id, _ := old["id"].(string)
	return Receipt{Location: s.endpoint("DocumentReference/"+url.PathEscape(id), nil), HTTPStatus: http.StatusOK}, nil
}

// create posts the document. The document id counts as ambiguous from the moment the
// request may have left until a definite answer (2xx or 4xx) comes back.
func (s *ServerSink) create(ctx context.Context, system string, doc DocumentReference, body []byte, conditional bool) (Receipt, error) {
	id := *doc.Identifier[0].Value
	hdr := http.Header{}
	if conditional {
		hdr.Set("If-None-Exist", identifierSearch(system, id).Encode())
	}
	s.setAmbiguous(id, true)
	resp, err := s.do(ctx, http.MethodPost, s.endpoint("DocumentReference", nil), hdr, body)
	if err != nil {
		return Receipt{}, err
	}
	if resp.status < 500 {
		s.setAmbiguous(id, false)
	}
	if resp.status == http.StatusPreconditionFailed {
		return Receipt{}, permanent("the patient record holds several documents with this note's identifier; ask the EPR supplier to remove the duplicates", nil)
	}
	if err := s.classify(resp, "the patient record refused the document"); err != nil {
		return Receipt{}, err
	}
	if resp.status == http.StatusCreated {
		return Receipt{Created: true, Location: s.location(resp, "DocumentReference"), HTTPStatus: resp.status}, nil
	}
	// 200: the identifier already existed. The reply may carry that resource; if it does
	// not, look it up. Either way it must be this note.
	if existing, ok := asDocumentReference(resp.body); ok {
		if err := sameDocument(existing, doc); err != nil {
			return Receipt{}, err
		}
		return Receipt{Location: s.location(resp, "DocumentReference"), HTTPStatus: resp.status}, nil
	}
	rc, found, err := s.existing(ctx, system, doc)
	if err != nil {
		return Receipt{}, err
	}
	if !found {
		return Receipt{}, retryable("the patient record answered 200 to the create but holds no document with this note's identifier", 0, nil)
	}
	return rc, nil
}

// existing looks for the document on the EPR by identifier. Found, it must be this note.
func (s *ServerSink) existing(ctx context.Context, system string, doc DocumentReference) (Receipt, bool, error) {
	id := *doc.Identifier[0].Value
	m, err := s.findDocument(ctx, system, id)
	if err != nil || m == nil {
		return Receipt{}, false, err
	}
	b, _ := json.Marshal(m)
	ex, _ := asDocumentReference(b)
	if err := sameDocument(ex, doc); err != nil {
		return Receipt{}, false, err
	}
	s.setAmbiguous(id, false)
	loc := ""
	if ex.ID != "" {
		loc = s.endpoint("DocumentReference/"+url.PathEscape(ex.ID), nil)
	}
	return Receipt{Location: loc, HTTPStatus: http.StatusOK}, true, nil
}

func (s *ServerSink) isAmbiguous(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ambiguous[id]
}

func (s *ServerSink) setAmbiguous(id string, v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v {
		s.ambiguous[id] = true
	} else {
		delete(s.ambiguous, id)
	}
}

// Probe reads the server's CapabilityStatement now (serve calls it at start) and reports
// whether it declares conditional create for DocumentReference.
func (s *ServerSink) Probe(ctx context.Context) (conditionalCreate bool, err error) {
	return s.conditionalCreate(ctx)
}

// conditionalCreate reads (once) whether the server declares conditional create for
// DocumentReference. A server without a readable CapabilityStatement is taken not to.
func (s *ServerSink) conditionalCreate(ctx context.Context) (bool, error) {
	s.mu.Lock()
	if s.conditional != nil {
		v := *s.conditional
		s.mu.Unlock()
		return v, nil
	}
	s.mu.Unlock()
	resp, err := s.do(ctx, http.MethodGet, s.endpoint("metadata", nil), nil, nil)
	if err != nil {
		return false, err
	}
	v := false
	switch {
	case resp.status >= 200 && resp.status < 300:
		v = DeclaresConditionalCreate(resp.body)
	case resp.status >= 400 && resp.status < 500 && resp.status != http.StatusUnauthorized &&
		resp.status != http.StatusForbidden && resp.status != http.StatusTooManyRequests:
		// No CapabilityStatement: search before every create.
	default:
		return false, s.classify(resp, "the EPR refused to describe its capabilities")
	}
	s.mu.Lock()
	s.conditional = &v
	s.mu.Unlock()
	return v, nil
}

// DeclaresConditionalCreate reports whether a CapabilityStatement (JSON) declares
// conditional create for DocumentReference.
func DeclaresConditionalCreate(capabilityStatement []byte) bool {
	var cs struct {
		Rest []struct {
			Resource []struct {
				Type              string `json:"type"`
				ConditionalCreate bool   `json:"conditionalCreate"`
			} `json:"resource"`
		} `json:"rest"`
	}
	if json.Unmarshal(capabilityStatement, &cs) != nil {
		return false
	}
	for _, r := range cs.Rest {
		for _, res := range r.Resource {
			if res.Type == "DocumentReference" && res.ConditionalCreate {
				return true
			}
		}
	}
	return false
}

// docSummary is what we compare of a DocumentReference found on the EPR.
type docSummary struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Subject      struct {
		Reference  string `json:"reference"`
		Identifier *struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	} `json:"subject"`
	Content []struct {
		Attachment struct {
			Hash string `json:"hash"`
			Data string `json:"data"`
		} `json:"attachment"`
	} `json:"content"`
}

func asDocumentReference(b []byte) (docSummary, bool) {
	var d docSummary
	if json.Unmarshal(b, &d) != nil || d.ResourceType != "DocumentReference" {
		return docSummary{}, false
	}
	return d, true
}

// sameDocument holds the note when the EPR's document under its identifier is not this
// note: another patient (the identifier was reused, or the NHS number corrected since),
// or another text (an older version).
func sameDocument(ex docSummary, want DocumentReference) error {
	wantNHS := ""
	if want.Subject != nil && want.Subject.Identifier != nil && want.Subject.Identifier.Value != nil {
		wantNHS = *want.Subject.Identifier.Value
	}
	wantRef := ""
	if want.Subject != nil && want.Subject.Reference != nil {
		wantRef = *want.Subject.Reference
	}
	switch {
	case ex.Subject.Identifier != nil && ex.Subject.Identifier.System == SystemNHSNumber &&
		strings.ReplaceAll(ex.Subject.Identifier.Value, " ", "") != wantNHS:
		return permanent("held: the patient record already holds a document with this note's identifier, filed against a different patient; the CSO and the EPR supplier must check it before anything more is sent", nil)
	case ex.Subject.Reference != "" && wantRef != "" && ex.Subject.Reference != wantRef:
		return permanent("held: the patient record already holds a document with this note's identifier, filed against a different patient record; the CSO and the EPR supplier must check it before anything more is sent", nil)
	}
	wantHash := ""
	if len(want.Content) > 0 && want.Content[0].Attachment.Hash != nil {
		wantHash = *want.Content[0].Attachment.Hash
	}
	if len(ex.Content) == 0 {
		return permanent("held: the patient record already holds a document with this note's identifier but without content; the EPR supplier must check it", nil)
	}
	got := ex.Content[0].Attachment
	same := got.Hash == wantHash
	if got.Hash == "" && want.Content[0].Attachment.Data != nil {
		same = got.Data == *want.Content[0].Attachment.Data
	}
	if !same {
		return permanent("held: the patient record already holds a document with this note's identifier but with different text (an older version?); amend the note rather than resend it", nil)
	}
	return nil
}

// findPatient returns the logical id of the one Patient with this NHS number.
func (s *ServerSink) findPatient(ctx context.Context, nhs string) (string, error) {
	digits, _ := nhsnumber.Normalize(nhs) // validated by the caller
	q := url.Values{"identifier": {SystemNHSNumber + "|" + digits}}
	entries, err := s.search(ctx, "Patient", q, "looking up the patient")
	if err != nil {
		return "", err
	}
	shown := nhsnumber.Format(digits)
	switch len(entries) {
	case 0:
		return "", permanent(fmt.Sprintf("held: no patient with NHS number %s on the EPR (check the number, or register the patient first)", shown), nil)
	case 1:
	default:
		return "", permanent(fmt.Sprintf("held: %d patients with NHS number %s on the EPR; the record must be merged before the note can be filed", len(entries), shown), nil)
	}
	var p r4.Patient
	if err := json.Unmarshal(entries[0], &p); err != nil || p.Id == nil {
		return "", permanent("the EPR's patient search returned an unreadable Patient", err)
	}
	for _, id := range p.Identifier {
		if id.System != nil && *id.System == SystemNHSNumber && id.Value != nil && strings.ReplaceAll(*id.Value, " ", "") == digits {
			return *p.Id, nil
		}
	}
	return "", permanent(fmt.Sprintf("held: the EPR's patient search for NHS number %s returned a patient with a different NHS number", shown), nil)
}

// findDocument returns the raw JSON of our DocumentReference with this document id, or nil.
// It stays a map so that writing it back keeps fields our R4 structs do not model.
func (s *ServerSink) findDocument(ctx context.Context, system, documentID string) (map[string]any, error) {
	entries, err := s.search(ctx, "DocumentReference", identifierSearch(system, documentID), "looking up the document by its identifier")
	if err != nil || len(entries) == 0 {
		return nil, err
	}
	if len(entries) > 1 {
		return nil, permanent("the patient record holds several copies of this document; ask the EPR supplier to remove the duplicates", nil)
	}
	var m map[string]any
	if err := json.Unmarshal(entries[0], &m); err != nil {
		return nil, permanent("the EPR returned an unreadable DocumentReference", err)
	}
	return m, nil
}

// retiredStatus is what an amendment does to the document it replaces: superseded, or
// entered-in-error when the amendment moved the note to another patient (the old one was
// filed against the wrong record).
func retiredStatus(n Note, old map[string]any) string {
	if subj, ok := old["subject"].(map[string]any); ok {
		if id, ok := subj["identifier"].(map[string]any); ok {
			if v, _ := id["value"].(string); v != "" {
				digits, _ := nhsnumber.Normalize(n.NHSNumber)
				if strings.ReplaceAll(v, " ", "") != digits {
					return "entered-in-error"
				}
			}
		}
	}
	return "superseded"
}

// retire sets a DocumentReference's status (superseded, entered-in-error), guarded by its
// version so a concurrent edit on the EPR is not overwritten.
func (s *ServerSink) retire(ctx context.Context, old map[string]any, status string) error {
	if old["status"] == status {
		return nil
	}
	id, _ := old["id"].(string)
	if id == "" {
		return permanent("the document being replaced has no id on the EPR", nil)
	}
	old["status"] = status
	body, err := json.Marshal(old)
	if err != nil {
		return permanent("the replaced document could not be encoded", err)
	}
	hdr := http.Header{}
	if meta, ok := old["meta"].(map[string]any); ok {
		if v, ok := meta["versionId"].(string); ok && v != "" {
			hdr.Set("If-Match", `W/"`+v+`"`)
		}
	}
	resp, err := s.do(ctx, http.MethodPut, s.endpoint("DocumentReference/"+url.PathEscape(id), nil), hdr, body)
	if err != nil {
		return err
	}
	if resp.status == http.StatusPreconditionFailed || resp.status == http.StatusConflict {
		// Someone changed the old document meanwhile: retrying re-reads it.
		return retryable("the replaced document changed on the EPR while it was being marked "+status, 0, nil)
	}
	return s.classify(resp, "the patient record refused to mark the replaced document "+status)
}

func (s *ServerSink) search(ctx context.Context, resourceType string, q url.Values, what string) ([]json.RawMessage, error) {
	resp, err := s.do(ctx, http.MethodGet, s.endpoint(resourceType, q), nil, nil)
	if err != nil {
		return nil, err
	}
	if err := s.classify(resp, "the EPR refused the search while "+what); err != nil {
		return nil, err
	}
	var b r4.Bundle
	if err := json.Unmarshal(resp.body, &b); err != nil {
		return nil, retryable("the EPR returned an unreadable search result while "+what, 0, err)
	}
	var out []json.RawMessage
	for _, e := range b.Entry {
		if e.Search != nil && e.Search.Mode != nil && *e.Search.Mode != r4.SearchEntryModeMatch {
			continue
		}
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		if json.Unmarshal(e.Resource, &head) == nil && head.ResourceType == resourceType {
			out = append(out, e.Resource)
		}
	}
	return out, nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// maxResponse bounds what we read from the server; FHIR replies here are small.
const maxResponse = 8 << 20

func (s *ServerSink) do(ctx context.Context, method, target string, hdr http.Header, body []byte) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return response{}, permanent("the FHIR request could not be built (check the base URL)", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/fhir+json")
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json; charset=utf-8")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 && re.Response.StatusCode != http.StatusTooManyRequests {
			return response{}, permanent("the EPR's token endpoint refused scribe's credentials (an administrator must check the SMART client settings)", err)
		}
		if ctx.Err() != nil {
			return response{}, retryable("delivery was interrupted", 0, ctx.Err())
		}
		return response{}, retryable("the patient record server could not be reached", 0, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return response{}, retryable("the patient record server's reply was cut off", 0, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// classify maps an HTTP status to nil, a retryable or a permanent error that carries
// the status (for the write-back audit trail).
func (s *ServerSink) classify(r response, what string) error {
	err := s.classifyStatus(r, what)
	var de *DeliveryError
	if errors.As(err, &de) {
		de.HTTPStatus = r.status
	}
	return err
}

func (s *ServerSink) classifyStatus(r response, what string) error {
	switch {
	case r.status >= 200 && r.status < 300:
		return nil
	case r.status >= 300 && r.status < 400:
		return permanent(fmt.Sprintf("held: the patient record server answered HTTP %d, redirecting to %q; scribe never follows a redirect with patient data (an administrator must set epr.fhir_base_url to the server's real address, then retry)",
			r.status, r.header.Get("Location")), nil)
	case r.status == http.StatusTooManyRequests || r.status == http.StatusRequestTimeout || r.status >= 500:
		wait, note := retryAfter(r.header.Get("Retry-After"), s.now())
		return retryable(fmt.Sprintf("the patient record server is busy or unavailable (HTTP %d)%s", r.status, note), wait, nil)
	case r.status == http.StatusUnauthorized || r.status == http.StatusForbidden:
		return permanent(fmt.Sprintf("the patient record server refused scribe's credentials (HTTP %d); an administrator must check the FHIR authentication settings", r.status), nil)
	default:
		msg := fmt.Sprintf("%s (HTTP %d)", what, r.status)
		if detail := outcomeText(r.body); detail != "" {
			msg += ": " + detail
		}
		return permanent(msg, nil)
	}
}

// outcomeText summarises an OperationOutcome body for people.
func outcomeText(body []byte) string {
	var oo r4.OperationOutcome
	if json.Unmarshal(body, &oo) != nil {
		return ""
	}
	var parts []string
	for _, is := range oo.Issue {
		var t string
		switch {
		case is.Details != nil && is.Details.Text != nil:
			t = *is.Details.Text
		case is.Diagnostics != nil:
			t = *is.Diagnostics
		default:
			continue
		}
		if len(is.Expression) > 0 {
			t += " at " + strings.Join(is.Expression, ", ")
		}
		parts = append(parts, t)
	}
	return strings.Join(parts, "; ")
}

func (s *ServerSink) endpoint(path string, q url.Values) string {
	u := *s.base
	u.Path = strings.TrimRight(u.Path, "/") + "/" + path
	u.RawQuery = ""
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// location returns the absolute URL of the resource in a create response, without a
// version (/_history/N), so a first delivery and a repeat name the same resource.
func (s *ServerSink) location(r response, resourceType string) string {
	if loc := r.header.Get("Location"); loc != "" {
		if i := strings.Index(loc, "/_history/"); i >= 0 {
			loc = loc[:i]
		}
		// A relative Location is relative to the FHIR base, which needs its trailing slash
		// for URL resolution to keep the last path segment.
		dir := *s.base
		dir.Path = strings.TrimRight(dir.Path, "/") + "/"
		if u, err := dir.Parse(loc); err == nil {
			return u.String()
		}
		return loc
	}
	var head struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(r.body, &head) == nil && head.ID != "" {
		return s.endpoint(resourceType+"/"+head.ID, nil)
	}
	return ""
}
