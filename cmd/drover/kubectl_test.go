package main

import "testing"

func TestHasKubeconfigFlag(t *testing.T) {
	cases := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"get", "ns"}, false},
		{[]string{"--kubeconfig", "/x", "get", "ns"}, true},
		{[]string{"get", "ns", "--kubeconfig=/x"}, true},
		{[]string{"exec", "p", "--", "cat", "--kubeconfig"}, false},
		{[]string{"get", "--kubeconfigx"}, false},
	}
	for _, tc := range cases {
		if got := hasKubeconfigFlag(tc.args); got != tc.want {
			t.Errorf("hasKubeconfigFlag(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
