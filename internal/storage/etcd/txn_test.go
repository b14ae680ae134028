package etcd

import (
	"context"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// recordingKV is a pb.KVClient that keeps the transactions sent to it and
// answers none: it shows what clientv3's builder sends, not how etcd
// answers (the contract tests run the Store's requests on a real member).
type recordingKV struct {
	pb.KVClient
	txns []*pb.TxnRequest
}

func (r *recordingKV) Txn(_ context.Context, in *pb.TxnRequest, _ ...grpc.CallOption) (*pb.TxnResponse, error) {
	r.txns = append(r.txns, in)
	return &pb.TxnResponse{Header: &pb.ResponseHeader{}}, nil
}

// TestWriteTxnsAreClientv3s: the transactions the Store builds are the ones
// it used to have clientv3 build, field for field.
func TestWriteTxnsAreClientv3s(t *testing.T) {
	rec := &recordingKV{}
	kv := clientv3.NewKVFromKVClient(rec, nil)
	ctx := context.Background()
	const key, value = "/registry/pods/ns/p", "{\"kind\":\"Pod\"}"
	for _, tc := range []struct {
		name  string
		ours  *pb.TxnRequest
		built clientv3.Txn
	}{
		{"create", createTxn([]byte(key), []byte(value), 0), kv.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, value))},
		{"create with lease", createTxn([]byte(key), []byte(value), 0x1234), kv.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, value, clientv3.WithLease(0x1234)))},
		{"update", updateTxn([]byte(key), []byte(value), 42, 0), kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", 42)).
			Then(clientv3.OpPut(key, value)).
			Else(clientv3.OpGet(key, clientv3.WithKeysOnly()))},
		{"update with lease", updateTxn([]byte(key), []byte(value), 42, 0x1234), kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", 42)).
			Then(clientv3.OpPut(key, value, clientv3.WithLease(0x1234))).
			Else(clientv3.OpGet(key, clientv3.WithKeysOnly()))},
		{"delete", deleteTxn([]byte(key), 42), kv.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", 42)).
			Then(clientv3.OpDelete(key, clientv3.WithPrevKV())).
			Else(clientv3.OpGet(key, clientv3.WithKeysOnly()))},
	} {
		rec.txns = nil
		if _, err := tc.built.Commit(); err != nil {
			t.Fatal(err)
		}
		if len(rec.txns) != 1 {
			t.Fatalf("%s: clientv3 sent %d transactions, want 1", tc.name, len(rec.txns))
		}
		if !proto.Equal(tc.ours, rec.txns[0]) {
			t.Errorf("%s: built\n%v\nclientv3 built\n%v", tc.name, tc.ours, rec.txns[0])
		}
	}
}

// TestNewInProcessNeedsKV: a client without a gRPC connection gives writes
// no way to etcd unless Options.KV is set; New says so at once rather than
// at the first write.
func TestNewInProcessNeedsKV(t *testing.T) {
	c := member.InProcessClient()
	defer c.Close()
	defer func() {
		if recover() == nil {
			t.Fatal("New of an in-process client without Options.KV did not panic")
		}
	}()
	New(c, Options{})
}

// BenchmarkUpdateTxn measures building an update's transaction and handing
// it to a KVClient that answers at once: the client side of a write, which
// the benchmarks against a member drown in the server's work. "clientv3" is
// the builder the Store used before.
func BenchmarkUpdateTxn(b *testing.B) {
	ctx := context.Background()
	const key = "/registry/pods/default/pod-00000001"
	b.Run("clientv3", func(b *testing.B) {
		kv := clientv3.NewKVFromKVClient(&answeringKV{}, nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := kv.Txn(leader(ctx)).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", 42)).
				Then(clientv3.OpPut(key, string(value1K))).
				Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
				Commit(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("direct", func(b *testing.B) {
		s := &Store{kv: &answeringKV{}, inProcess: true}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.txn(ctx, updateTxn([]byte(key), value1K, 42, 0)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// answeringKV answers every transaction with one shared response.
type answeringKV struct{ pb.KVClient }

var succeeded = &pb.TxnResponse{Header: &pb.ResponseHeader{Revision: 43}, Succeeded: true}

func (answeringKV) Txn(context.Context, *pb.TxnRequest, ...grpc.CallOption) (*pb.TxnResponse, error) {
	return succeeded, nil
}
