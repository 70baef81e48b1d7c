package postgres

import (
	"github.com/cvbridge/cvbridge/bridge/inbound/inboundstore"
)

// The inbound messages, OAuth tokens and erasure of personal data are
// sqlinbound's, embedded in Store.
var (
	_ inboundstore.Store        = (*Store)(nil)
	_ inboundstore.MessageAdmin = (*Store)(nil)
	_ inboundstore.PersonalData = (*Store)(nil)
)
