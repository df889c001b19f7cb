package cloudapi

import (
	"context"
	"errors"
	"strings"
	"testing"

	live "github.com/alibabacloud-go/live-20161101/v2/client"

	"github.com/livrec/livrec/internal/peer"
	"github.com/livrec/livrec/internal/record"
)

// commands is Options.Commands in a test: it answers with err and records the calls.
type commands struct {
	err  error
	runs []string
}

func (c *commands) Command(_ context.Context, domain, app, stream, cmd string) error {
	c.runs = append(c.runs, domain+"/"+app+"/"+stream+" "+cmd)
	return c.err
}

// RealTimeRecordCommand goes through Options.Commands (on a cluster node, to the
// stream's owner) and answers with its outcome: the owner's refusal with its code, an
// owner out of reach as 503 ServiceUnavailable naming the node.
func TestRealTimeRecordCommandForwarded(t *testing.T) {
	cmds := &commands{}
	e := newEnv(t, func(o *Options) { o.Commands = cmds })
	c := e.client(false, testKeyID, testSecret)
	run := func() error {
		_, err := c.RealTimeRecordCommand(&live.RealTimeRecordCommandRequest{DomainName: s("example.com"), AppName: s("live"),
			StreamName: s("cam"), Command: s("stop")})
		return err
	}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if len(cmds.runs) != 1 || cmds.runs[0] != "example.com/live/cam stop" {
		t.Fatalf("commands run: %v", cmds.runs)
	}
	cmds.err = record.ErrTaskNotStarted
	wantSDKError(t, run(), 400, "TaskNotStarted")
	cmds.err = &peer.UnreachableError{Node: "n1", Addr: "10.0.0.11:8080", Err: errors.New("connection refused")}
	err := run()
	wantSDKError(t, err, 503, "ServiceUnavailable")
	if !strings.Contains(err.Error(), "node n1 (10.0.0.11:8080)") {
		t.Fatalf("503 does not name the node: %v", err)
	}
}
