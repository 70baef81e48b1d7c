package simulator

import (
	"encoding/json"
	"net/http"
)

// ObservePrefix starts the paths of the observation endpoints, which tests
// of a whole process use to see what the simulator received:
//
//   - GET /_sim/stats answers Stats as JSON;
//   - GET /_sim/accepted answers the Accepted list as JSON, bodies in base64.
//
// Only these two exact paths are observation endpoints; every other path
// is the results endpoint, as Coachview's /elearning/result.aspx?plugin=….
const ObservePrefix = "/_sim/"

// serveObservation answers r if it is for an observation endpoint and
// reports whether it did.
func (s *Simulator) serveObservation(w http.ResponseWriter, r *http.Request) bool {
	var v any
	switch r.URL.Path {
	case ObservePrefix + "stats":
		if r.Method == http.MethodGet {
			v = s.Stats()
		}
	case ObservePrefix + "accepted":
		if r.Method == http.MethodGet {
			v = s.Accepted()
		}
	default:
		return false
	}
	if v == nil {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "observation endpoints answer GET only", http.StatusMethodNotAllowed)
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	// Encoding plain structs cannot fail; a write error means the client left.
	_ = json.NewEncoder(w).Encode(v)
	return true
}
