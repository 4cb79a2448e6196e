package register

import "github.com/prometheus/client_golang/prometheus"

// metrics of the feature (namespace stoa, subsystem register).
type metrics struct {
	attempts *prometheus.CounterVec
	refused  *prometheus.CounterVec
	captcha  *prometheus.CounterVec
	account  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer, caps *captchas) *metrics {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "register", Name: "attempts_total",
			Help: "Sign-up attempts by method (inband, web, ...) and outcome (created, refused).",
		}, []string{"method", "outcome"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "register", Name: "refused_total",
			Help: "Refused sign-ups (and refused requests for the registration form) by reason.",
		}, []string{"reason"}),
		captcha: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "register", Name: "captcha_total",
			Help: "CAPTCHA challenges issued and answers by outcome (issued, solved, wrong, expired, missing).",
		}, []string{"outcome"}),
		account: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stoa", Subsystem: "register", Name: "account_changes_total",
			Help: "In-band changes of existing accounts (password_changed, deleted) and approvals (approved).",
		}, []string{"change"}),
	}
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "stoa", Subsystem: "register", Name: "captcha_pending",
		Help: "CAPTCHA challenges waiting for an answer.",
	}, func() float64 { return float64(caps.pending()) })
	reg.MustRegister(m.attempts, m.refused, m.captcha, m.account, pending)
	return m
}
