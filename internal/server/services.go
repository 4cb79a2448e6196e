package server

// Services: a feature offers an object to other features without either
// importing the other. The provider registers its service object with
// Setup.Provide; a consumer declares the narrow interface it needs (only
// the methods it calls) and finds the first provided object that has
// them with Find, at run time (so the order of the features in
// internal/mod/all.go does not matter).

type serviceRegistry struct {
	list []providedService
}

type providedService struct {
	feature string
	v       any
}

// Provide offers v to the other features (e.g. the account state
// feature's object with Suspend, Restrict and State methods).
func (s *Setup) Provide(v any) {
	s.srv.services.list = append(s.srv.services.list, providedService{feature: s.feature, v: v})
}

// Find returns the first service a feature provided that implements T
// (an interface), and whether there is one. Call it after setup, when
// the service is needed.
func Find[T any](srv *Server) (T, bool) {
	for _, p := range srv.services.list {
		if t, ok := p.v.(T); ok {
			return t, true
		}
	}
	var zero T
	return zero, false
}
