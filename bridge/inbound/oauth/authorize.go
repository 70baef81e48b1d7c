package oauth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"log/slog"
	"net/http"

	oerrors "github.com/go-oauth2/oauth2/v4/errors"
	"golang.org/x/crypto/bcrypt"
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

// AuthorizeHandler is the authorization endpoint: GET shows the login and
// consent page, POST (the page's form) checks the administrator's
// credentials and redirects to the client with a code, or with
// error=access_denied when the administrator denies. A request naming an
// unknown client or an unregistered redirect URI gets an error page and is
// never redirected.
func (s *Server) AuthorizeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
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
		c, ok := s.clients[r.Form.Get("client_id")]
		if !ok {
			s.render(w, http.StatusBadRequest, pageData{Client: "an unknown client", Message: "This client is not known to the bridge (client_id)."})
			return
		}
		if r.Form.Get("redirect_uri") == "" && len(c.uris) == 1 {
			r.Form.Set("redirect_uri", c.uris[0])
		}
		if exactRedirect(c.GetDomain(), r.Form.Get("redirect_uri")) != nil {
			s.render(w, http.StatusBadRequest, pageData{Client: c.name, Message: "The redirect URI of this request is not registered for the client."})
			return
		}
		if err := s.srv.HandleAuthorizeRequest(w, r); err != nil {
			// The library returns, without answering, the errors it finds
			// before it has a request to redirect with.
			s.render(w, http.StatusBadRequest, pageData{Client: c.name, Message: "The authorisation request is invalid: " + err.Error() + "."})
		}
	})
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

// userAuthorization is the library's hook for the resource owner's
// decision: it shows the form (answering the request itself, so the
// library stops) or returns the administrator's name once the form was
// posted back with the right CSRF token, credentials and "allow".
func (s *Server) userAuthorization(w http.ResponseWriter, r *http.Request) (string, error) {
	if r.Method != http.MethodPost || r.PostForm.Get("decision") == "" {
		s.showForm(w, r, http.StatusOK, "")
		return "", nil
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(r.PostForm.Get("csrf_token"))) != 1 || ck.Value == "" {
		s.showForm(w, r, http.StatusForbidden, "The form expired or was not sent from this page; please sign in again.")
		return "", nil
	}
	if r.PostForm.Get("decision") != "allow" {
		s.log.Info("oauth: administrator denied authorisation", slog.String("client", r.Form.Get("client_id")))
		return "", oerrors.ErrAccessDenied
	}
	// Failed sign-ins draw on a shared budget (5, refilled one per 10s),
	// which slows down password guessing.
	if s.logins.Tokens() < 1 {
		s.showForm(w, r, http.StatusTooManyRequests, "Too many failed sign-in attempts; wait a minute and try again.")
		return "", nil
	}
	if !s.checkLogin(r.PostForm.Get("username"), r.PostForm.Get("password")) {
		s.logins.Allow()
		s.log.Warn("oauth: administrator sign-in failed", slog.String("client", r.Form.Get("client_id")))
		s.showForm(w, r, http.StatusUnauthorized, "Wrong user name or password.")
		return "", nil
	}
	s.log.Info("oauth: administrator authorised client", slog.String("client", r.Form.Get("client_id")))
	return s.user, nil
}

// checkLogin compares the credentials with the administrator's in constant
// time: the password's bcrypt check runs whatever the user name.
func (s *Server) checkLogin(user, password string) bool {
	a, b := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(s.user))
	userOK := subtle.ConstantTimeCompare(a[:], b[:]) == 1
	pwOK := bcrypt.CompareHashAndPassword(s.pwHash, []byte(password)) == nil
	return userOK && pwOK
}
