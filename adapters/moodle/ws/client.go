// Package ws is a small client for Moodle's REST web services: one
// form-encoded POST per call to {wwwroot}/webservice/rest/server.php, PHP
// bracket arrays for structured parameters, JSON answers, and Moodle's
// errors (HTTP 200 with an "exception" object, or 403 with an empty body
// when web services are off) turned into classified errors that say what to
// fix in Moodle.
//
// It owns the wire format and the concurrency limit towards one Moodle; it
// knows nothing of Coachview or of what the calls mean to the bridge.
package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cvbridge/cvbridge/adapters/kit"
)

// restPath is the REST endpoint below wwwroot.
const restPath = "/webservice/rest/server.php"

// maxBody bounds an answer read into memory (a grade report of a big course
// is well below this).
const maxBody = 32 << 20

// Client calls Moodle's REST web services with one token. It is safe for
// concurrent use; at most the configured number of calls run at once.
type Client struct {
	endpoint string
	token    string
	http     *http.Client
	slots    chan struct{}
}

// Options tune a Client. The zero value is usable.
type Options struct {
	// Concurrency is the most calls in flight at once (default 2). Every
	// call boots Moodle and writes a log row, so keep it low.
	Concurrency int
	// HTTPClient is used for the calls (default: a client with a 60s timeout).
	HTTPClient *http.Client
}

// New returns a client for the Moodle at wwwroot (its base URL, such as
// https://learn.example.nl). HTTPS is required unless the host is a
// loopback address.
func New(wwwroot, token string, o Options) (*Client, error) {
	shown := kit.ShowURL(wwwroot) // a token pasted into the URL stays out of the message
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(wwwroot), "/"))
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("moodle url %s is not an absolute http(s) URL such as https://learn.example.nl", shown)
	}
	if u.Scheme == "http" && !IsLoopback(u.Hostname()) {
		return nil, fmt.Errorf("moodle url %s must use https: the token would travel in clear text (plain http is allowed only for loopback addresses)", shown)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("moodle url %s must be Moodle's wwwroot without user, query or fragment (the token goes in token_file)", shown)
	}
	if token == "" {
		return nil, errors.New("moodle web-service token is empty")
	}
	n := o.Concurrency
	if n <= 0 {
		n = 2
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	if o.HTTPClient != nil {
		copied := *o.HTTPClient
		hc = &copied
	}
	// A redirect is never followed: the token is in the body, and a 307 or
	// 308 would post it again to wherever the site points, even over plain
	// http. The redirect is reported instead (Call).
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		endpoint: u.String() + restPath,
		token:    token, // read by kit.ReadSecret, the one trimming rule
		http:     hc,
		slots:    make(chan struct{}, n),
	}, nil
}

// IsLoopback reports whether host names the local machine.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Call invokes function with params (encoded as by Encode) and decodes the
// JSON answer into out (nil to ignore it; functions that return nothing
// answer null). Numbers are decoded as json.Number where out holds interface
// values. An error is an *Error.
func (c *Client) Call(ctx context.Context, function string, params map[string]any, out any) error {
	form, err := Encode(params)
	if err != nil {
		return &Error{Function: function, Kind: Permanent, Err: err}
	}
	form.Set("wstoken", c.token)
	form.Set("wsfunction", function)
	form.Set("moodlewsrestformat", "json")

	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return &Error{Function: function, Kind: Transient, Err: ctx.Err()}
	}
	body, status, location, err := c.post(ctx, form.Encode())
	<-c.slots
	if err != nil {
		return &Error{Function: function, Kind: Transient, Err: err}
	}
	if status >= 300 && status < 400 {
		return &Error{Function: function, HTTPStatus: status, Kind: Permanent,
			Err: fmt.Errorf("the site redirects (HTTP %d) to %s: set url to the address it redirects to; redirects are not followed, as the token would go along", status, location)}
	}
	return decodeAnswer(function, status, body, out)
}

// post sends form to the endpoint and returns the answer's body and status,
// and for a redirect where it points (scheme, host and path only).
func (c *Client) post(ctx context.Context, form string) (body []byte, status int, location string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, strings.NewReader(form))
	if err != nil {
		return nil, 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// The URL carries no token (it is in the body), so the error is safe to show.
		return nil, 0, "", err
	}
	defer func() { _ = resp.Body.Close() }() // read only
	if u, err := resp.Location(); err == nil {
		location = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, resp.StatusCode, location, fmt.Errorf("reading the answer (HTTP %d): %w", resp.StatusCode, err)
	}
	return body, resp.StatusCode, location, nil
}

// decodeAnswer classifies an HTTP answer and decodes a good one into out.
func decodeAnswer(function string, status int, body []byte, out any) error {
	switch {
	case status == http.StatusForbidden:
		return &Error{Function: function, HTTPStatus: status, Kind: Permanent,
			Err: errors.New("the site answered 403 Forbidden: web services or the REST protocol are switched off. " +
				"Enable them under Site administration > Advanced features (Enable web services) and " +
				"Site administration > Server > Web services > Manage protocols (REST protocol)")}
	case status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout:
		return &Error{Function: function, HTTPStatus: status, Kind: Transient,
			Err: fmt.Errorf("the site answered HTTP %d: %s", status, snippet(body))}
	case status != http.StatusOK:
		return &Error{Function: function, HTTPStatus: status, Kind: Permanent,
			Err: fmt.Errorf("the site answered HTTP %d (is url Moodle's wwwroot?): %s", status, snippet(body))}
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		// Any object with an exception key is an error, whatever the
		// types of its fields.
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &probe); err == nil {
			if raw, ok := probe["exception"]; ok {
				return exceptionError(function, text(raw), text(probe["errorcode"]), text(probe["message"]))
			}
		}
	}
	if !json.Valid(trimmed) {
		// A maintenance page or a proxy's error page: try again later.
		return &Error{Function: function, HTTPStatus: status, Kind: Transient,
			Err: fmt.Errorf("the site answered something that is not JSON: %s", snippet(body))}
	}
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return &Error{Function: function, HTTPStatus: status, Kind: Permanent,
			Err: fmt.Errorf("the answer does not have the expected shape (is this Moodle 4.1 or later?): %w", err)}
	}
	return nil
}

// text returns a JSON string's value, or the raw JSON of anything else
// ("" for null or absent).
func text(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	if t := string(bytes.TrimSpace(raw)); t != "null" {
		return t
	}
	return ""
}

// snippet returns the start of a body for an error message.
func snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	if s == "" {
		return "(empty body)"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}
