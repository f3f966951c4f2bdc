package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// Settings are what one system ran with. The report prints them for every
// system, and a ratio between two systems is only computed when every setting
// that the comparison does not vary on purpose is the same on both sides.
type Settings struct {
	// Path is how a request reaches the server that stores the object.
	Path string `json:"path"`
	// Server is the program that serves the objects and how it runs.
	Server string `json:"server"`
	// Authentication is how the serving program learns who the caller is.
	Authentication string `json:"authentication"`
	// Admission is the admission chain of the serving program.
	Admission string `json:"admission"`
	// PriorityAndFairness says whether API Priority and Fairness limits the
	// requests of every API server on the path (otherwise max-in-flight).
	PriorityAndFairness bool `json:"priorityAndFairness"`
	// Etcd is how the storing server talks to its etcd.
	Etcd string `json:"etcd"`
	// Encryption is the encryption at rest of the objects.
	Encryption string `json:"encryption"`
	// WireFormat is what the client sends and accepts.
	WireFormat string `json:"wireFormat"`
	// Objects says what is created: the same for every system.
	Objects string `json:"objects"`
	// Client is the client and its limits.
	Client string `json:"client"`
}

// Setting names, as json tags, for the comparisons' Varies lists.
const (
	settingPath           = "path"
	settingServer         = "server"
	settingAuthentication = "authentication"
	settingAdmission      = "admission"
	settingPriority       = "priorityAndFairness"
	settingEtcd           = "etcd"
)

// differences names the settings that differ between a and b, other than
// those in varies, with both values.
func (a Settings) differences(b Settings, varies []string) []string {
	var out []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if slices.Contains(varies, name) {
			continue
		}
		x, y := va.Field(i).Interface(), vb.Field(i).Interface()
		if x != y {
			out = append(out, fmt.Sprintf("%s (%v against %v)", name, x, y))
		}
	}
	return out
}

// Comparison is one pair of systems the report sets side by side, and the
// settings it varies on purpose: everything else must be equal, or the
// report refuses the ratio and says why.
type Comparison struct {
	// Name is the ratio's column heading, such as O-agg/C.
	Name string `json:"name"`
	// A and B are the systems; the ratio is A's figure over B's.
	A string `json:"a"`
	B string `json:"b"`
	// Question is what the comparison answers.
	Question string `json:"question"`
	// Varies are the settings that differ by design.
	Varies []string `json:"varies"`
	// Refused, when set, is why the run's settings make the ratio meaningless.
	Refused string `json:"refused,omitempty"`
}

// comparisons are the ratios the report computes. The first is the headline:
// Capstan as users run it, through kube-apiserver, against a CRD on that same
// kube-apiserver.
var comparisons = []Comparison{
	{Name: "O-agg/C", A: "O-agg", B: "C",
		Question: "Capstan through kube-apiserver against the CRD on the same kube-apiserver (what users run)",
		Varies:   []string{settingPath, settingServer, settingAdmission}},
	{Name: "O-direct/O", A: "O-direct", B: "O",
		Question: "aggregated Capstan called directly against local mode: the cost of aggregated mode's own handler chain",
		Varies:   []string{settingPath, settingServer, settingAuthentication, settingAdmission, settingPriority, settingEtcd}},
	{Name: "O-agg/O-direct", A: "O-agg", B: "O-direct",
		Question: "the aggregator's proxy hop",
		Varies:   []string{settingPath, settingAuthentication}},
	{Name: "O-agg-pb/O-agg", A: "O-agg-pb", B: "O-agg",
		Question: "protobuf against JSON on the wire, through kube-apiserver",
		Varies:   []string{"wireFormat"}},
	{Name: "O-agg-pb/C", A: "O-agg-pb", B: "C",
		Question: "what each typed client gets by default: Capstan's generated clientset asks for protobuf, a CRD has only JSON",
		Varies:   []string{settingPath, settingServer, settingAdmission, "wireFormat"}},
	{Name: "O/C", A: "O", B: "C",
		Question: "local mode against the CRD",
		Varies:   []string{settingPath, settingServer, settingAuthentication, settingAdmission, settingPriority, settingEtcd}},
	{Name: "O/E", A: "O", B: "E",
		Question: "Capstan against raw etcd (the price of an API server)",
		Varies:   []string{settingPath, settingServer, settingAuthentication, settingAdmission, settingPriority, "encryption", "wireFormat", "client"}},
}

// checkComparisons fills in Refused for every comparison whose systems both
// ran and whose settings differ in something the comparison does not vary.
func checkComparisons(systems map[string]Settings) []Comparison {
	out := slices.Clone(comparisons)
	for i, c := range out {
		a, okA := systems[c.A]
		b, okB := systems[c.B]
		if !okA || !okB {
			continue
		}
		if d := a.differences(b, c.Varies); len(d) > 0 {
			out[i].Refused = "settings differ: " + strings.Join(d, "; ")
		}
	}
	return out
}
