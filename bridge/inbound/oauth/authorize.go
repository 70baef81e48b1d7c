package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	oauth2 "github.com/go-oauth2/oauth2/v4"
	"golang.org/x/crypto/bcrypt"

	"github.com/cvbridge/cvbridge/bridge/loginlimit"
)

// csrfCookie is the double-submit cookie of the login form: the form must
// post back the value the cookie holds. It is Secure, HttpOnly and
// SameSite=Strict, and not tied to one daemon, so the form works behind a
// load balancer.
const csrfCookie = "__Host-cvbridge-csrf"

// page is the login and consent page.
var page = template.Must(template.New("authorize").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cvbridge: authorise {{.Client}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:28em;margin:3em auto;padding:0 1em}label{display:block;margin:.8em 0 .2em}
input[type=text],input[type=password]{width:100%;padding:.4em}button{margin:1em .5em 0 0;padding:.5em 1.2em}.err{color:#a00}</style>
</head><body>
<h1>Authorise {{.Client}}</h1>
{{if .Message}}<p class="err">{{.Message}}</p>{{end}}
{{if .Form}}
<p><strong>{{.Client}}</strong> asks to enrol and unenrol participants in the e-learning system through this bridge.
Sign in as the bridge's administrator to allow it.</p>
<form method="post" autocomplete="off">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<label for="username">User name</label><input type="text" id="username" name="username" required>
<label for="password">Password</label><input type="password" id="password" name="password" required>
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>
</form>
{{end}}
</body></html>
`))

// pageCSP is the Content-Security-Policy of the page: nothing but its
// inline style, no framing, and the form may post only to this endpoint
// and so be answered by a redirect to redirect's origin (none when "").
func pageCSP(redirect string) string {
	formAction := "'self'"
	if origin := cspOrigin(redirect); origin != "" {
		formAction += " " + origin
	}
	return "default-src 'none'; style-src 'unsafe-inline'; form-action " + formAction + "; frame-ancestors 'none'"
}

// cspOrigin returns the origin of a registered redirect URI as a CSP
// source (scheme://host[:port]), or "" when it is none a source can name.
func cspOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || strings.ContainsAny(u.Host, " ;,'\"") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// pageData fills page.
type pageData struct {
	Client  string
	Message string
	Form    bool
	Params  map[string]string
	CSRF    string
}

// authorizeParams are the request parameters the form carries through.
var authorizeParams = []string{"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"}

// authError is an authorization error for the client (RFC 6749
// §4.1.2.1): its code and a description for a person.
type authError struct{ code, description string }

// authRequest is an authorization request whose client and redirect URI
// are known good, so errors can be sent back to the client.
type authRequest struct {
	client *client
	// redirect is where the answer goes; sent reports whether the request
	// named it (the code exchange must repeat it then).
	redirect string
	sent     bool
	state    string
}

// AuthorizeHandler is the authorization endpoint: GET shows the login and
// consent page, POST (the page's form) checks the administrator's
// credentials and redirects to the client with a code, or with
// error=access_denied when the administrator denies. A request naming an
// unknown client or an unregistered redirect URI (or none, when the client
// has several) gets an error page and is never redirected; every other
// faulty request is redirected to the client with error,
// error_description and state.
func (s *Server) AuthorizeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", pageCSP(""))
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			h.Set("Allow", "GET, POST")
			s.render(w, http.StatusMethodNotAllowed, pageData{Client: "a client", Message: "Only GET and POST are accepted here."})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			s.render(w, http.StatusBadRequest, pageData{Client: "a client", Message: "The request could not be read."})
			return
		}
		// The request's parameters are a GET's query or a POST's body, never
		// both: the page's form posts to the page's own address, query
		// included (so it works behind a proxy that adds a path prefix),
		// and its body repeats every parameter.
		if r.Method == http.MethodPost {
			r.Form = r.PostForm
		}
		ar, ok := s.authRequest(w, r)
		if !ok {
			return
		}
		// The answer to the form is a redirect to the client, which a
		// browser checks against form-action as well.
		h.Set("Content-Security-Policy", pageCSP(ar.redirect))
		if ae := validate(ar.client, r.Form); ae != nil {
			s.redirectError(w, r, ar, *ae)
			return
		}
		user, denied := s.userAuthorization(w, r)
		switch {
		case denied:
			s.redirectError(w, r, ar, authError{"access_denied", "The administrator of the e-learning bridge denied the request."})
			return
		case user == "":
			return // the page was shown
		}
		redirect := ""
		if ar.sent {
			redirect = ar.redirect
		}
		ti, err := s.mgr.GenerateAuthToken(r.Context(), oauth2.Code, &oauth2.TokenGenerateRequest{
			ClientID: ar.client.id, UserID: user, RedirectURI: redirect, Scope: r.Form.Get("scope"),
			CodeChallenge: r.Form.Get("code_challenge"), CodeChallengeMethod: oauth2.CodeChallengeMethod(r.Form.Get("code_challenge_method")),
		})
		if err != nil {
			s.log.Error("oauth: authorization code not issued", slog.String("client", ar.client.id), slog.String("error", err.Error()))
			s.redirectError(w, r, ar, authError{"server_error", "The e-learning bridge could not store the authorisation; please try again."})
			return
		}
		s.redirect(w, r, ar, url.Values{"code": {ti.GetCode()}})
	})
}

// authRequest checks the request's client and redirect URI, which must be
// right before anything can be sent back to the client; when they are not,
// it shows the error page and reports false.
func (s *Server) authRequest(w http.ResponseWriter, r *http.Request) (authRequest, bool) {
	if len(r.Form["client_id"]) > 1 || len(r.Form["redirect_uri"]) > 1 {
		s.render(w, http.StatusBadRequest, pageData{Client: "a client", Message: "The request names more than one client_id or redirect_uri."})
		return authRequest{}, false
	}
	c, ok := s.clients[r.Form.Get("client_id")]
	if !ok {
		s.render(w, http.StatusBadRequest, pageData{Client: "an unknown client", Message: "This client is not known to the bridge (client_id)."})
		return authRequest{}, false
	}
	ar := authRequest{client: c, redirect: r.Form.Get("redirect_uri"), sent: true, state: r.Form.Get("state")}
	if ar.redirect == "" {
		if len(c.uris) != 1 {
			s.render(w, http.StatusBadRequest, pageData{Client: c.name, Message: "The request names no redirect_uri, and the client has several registered."})
			return authRequest{}, false
		}
		ar.redirect, ar.sent = c.uris[0], false
	}
	if exactRedirect(c.GetDomain(), ar.redirect) != nil {
		s.render(w, http.StatusBadRequest, pageData{Client: c.name, Message: "The redirect URI of this request is not registered for the client."})
		return authRequest{}, false
	}
	return ar, true
}

// validate checks an authorization request's parameters for client c.
func validate(c *client, form url.Values) *authError {
	for _, k := range authorizeParams {
		if len(form[k]) > 1 {
			return &authError{"invalid_request", "The parameter " + k + " is sent more than once."}
		}
	}
	switch rt := form.Get("response_type"); {
	case rt == "":
		return &authError{"invalid_request", "The parameter response_type is missing; use response_type=code."}
	case rt != string(oauth2.Code):
		return &authError{"unsupported_response_type", "Only response_type=code (the authorization-code grant) is supported."}
	}
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return &authError{"invalid_request", "code_challenge_method is sent without code_challenge."}
	case challenge == "" && c.pkceRequired:
		return &authError{"invalid_request", "PKCE is required for this client: send code_challenge with code_challenge_method=S256."}
	case challenge == "":
		return nil
	case method != string(oauth2.CodeChallengeS256):
		return &authError{"invalid_request", "code_challenge_method must be S256 (plain, and a challenge without method, are not accepted)."}
	case !validChallenge(challenge):
		return &authError{"invalid_request", "code_challenge must be 43 to 128 characters of A-Z, a-z, 0-9 and -._~ (RFC 7636)."}
	}
	return nil
}

// validChallenge checks a code challenge's length and characters (RFC
// 7636 §4.2; an S256 challenge is 43 base64url characters).
func validChallenge(ch string) bool {
	if len(ch) < 43 || len(ch) > 128 {
		return false
	}
	for _, b := range []byte(ch) {
		if !('A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || strings.IndexByte("-._~", b) >= 0) {
			return false
		}
	}
	return true
}

// redirectError sends error ae back to the client.
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, ar authRequest, ae authError) {
	s.log.Info("oauth: authorization request refused", slog.String("client", ar.client.id), slog.String("error", ae.code))
	s.redirect(w, r, ar, url.Values{"error": {ae.code}, "error_description": {ae.description}})
}

// redirect sends the client to its redirect URI with params and the
// request's state added to the URI's own query.
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, ar authRequest, params url.Values) {
	u, err := url.Parse(ar.redirect)
	if err != nil { // registered URIs were parsed at start-up
		s.render(w, http.StatusInternalServerError, pageData{Client: ar.client.name, Message: "The client's redirect URI cannot be used."})
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if ar.state != "" {
		q.Set("state", ar.state)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// render writes the page.
func (s *Server) render(w http.ResponseWriter, status int, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := page.Execute(w, d); err != nil {
		s.log.Error("oauth: authorise page not written", slog.String("error", err.Error()))
	}
}

// showForm renders the login form with a fresh CSRF token.
func (s *Server) showForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		s.render(w, http.StatusInternalServerError, pageData{Client: "the client", Message: "The bridge could not make a form token."})
		return
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	params := map[string]string{}
	for _, k := range authorizeParams {
		if v := r.Form.Get(k); v != "" {
			params[k] = v
		}
	}
	s.render(w, status, pageData{Client: s.clients[r.Form.Get("client_id")].name, Message: msg, Form: true, Params: params, CSRF: tok})
}

// userAuthorization is the resource owner's decision: it shows the form
// (user "") or returns the administrator's name once the form was posted
// back with the right CSRF token, credentials and "allow"; denied when the
// administrator chose "deny".
func (s *Server) userAuthorization(w http.ResponseWriter, r *http.Request) (user string, denied bool) {
	if r.Method != http.MethodPost || r.PostForm.Get("decision") == "" {
		s.showForm(w, r, http.StatusOK, "")
		return "", false
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get("csrf_token"))) != 1 || ck.Value == "" {
		s.showForm(w, r, http.StatusForbidden, "The form expired or was not sent from this page; please sign in again.")
		return "", false
	}
	if r.PostForm.Get("decision") != "allow" {
		s.log.Info("oauth: administrator denied authorisation", slog.String("client", r.Form.Get("client_id")))
		return "", true
	}
	// Every attempt is charged to its address before the password is
	// checked, so parallel guesses cannot outrun the limit; a successful
	// one is refunded.
	if verdict := s.logins.Take(r.RemoteAddr, s.clock.Now()); verdict != loginlimit.Allowed {
		if verdict == loginlimit.Limited {
			s.log.Warn("oauth: sign-in attempts limited (further ones from this address are not logged until it gets an attempt again)",
				slog.String("client", r.Form.Get("client_id")), slog.String("addr", loginlimit.Key(r.RemoteAddr)))
		}
		s.showForm(w, r, http.StatusTooManyRequests, "Too many sign-in attempts from your address; wait a minute and try again.")
		return "", false
	}
	if !s.checkLogin(r.PostForm.Get("username"), r.PostForm.Get("password")) {
		s.log.Warn("oauth: administrator sign-in failed", slog.String("client", r.Form.Get("client_id")), slog.String("addr", loginlimit.Key(r.RemoteAddr)))
		s.showForm(w, r, http.StatusUnauthorized, "Wrong user name or password.")
		return "", false
	}
	s.logins.Refund(r.RemoteAddr)
	s.log.Info("oauth: administrator authorised client", slog.String("client", r.Form.Get("client_id")))
	return s.user, false
}

// checkLogin compares the credentials with the administrator's in constant
// time: the password's bcrypt check runs whatever the user name.
func (s *Server) checkLogin(user, password string) bool {
	a, b := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(s.user))
	userOK := subtle.ConstantTimeCompare(a[:], b[:]) == 1
	pwOK := bcrypt.CompareHashAndPassword(s.pwHash, []byte(password)) == nil
	return userOK && pwOK
}
