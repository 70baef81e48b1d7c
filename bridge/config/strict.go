package config

import (
	"go.yaml.in/yaml/v3"

	"github.com/cvbridge/cvbridge/bridge/strictyaml"
)

// Error is a configuration mistake located in a file (see strictyaml.Error).
type Error = strictyaml.Error

// Errors is every mistake found in a configuration, one a line.
type Errors = strictyaml.Errors

// DecodeStrict decodes node into out strictly, naming file, line and key of
// every mistake (strictyaml.Decode).
func DecodeStrict(file string, node *yaml.Node, out any) error {
	return strictyaml.Decode(file, node, out)
}
