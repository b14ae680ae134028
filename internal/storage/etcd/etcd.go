// Package etcd implements storage.Interface on an etcd v3 cluster through
// clientv3. A key's mod revision is its storage revision; writes are
// transactions that compare revisions, so concurrent writers cannot lose
// each other's changes.
//
// Every request over gRPC carries clientv3.WithRequireLeader, so a member cut
// off from its cluster fails fast with storage.ErrUnavailable instead of
// hanging or serving stale watches.
//
// Writes (create, update, delete) are etcdserverpb.TxnRequests built here
// and sent through an etcdserverpb.KVClient, without clientv3's transaction
// builder; reads, watches and leases go through clientv3.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/drover/drover/internal/storage"
)

// DefaultProgressInterval is how often idle watches get a Progress event.
const DefaultProgressInterval = 5 * time.Second

// Options tunes a Store. The zero value takes defaults.
type Options struct {
	// ProgressInterval is how often idle watches receive a Progress event
	// (default DefaultProgressInterval).
	ProgressInterval time.Duration

	// KV is the etcd KV API that writes go through. nil: one on the
	// client's gRPC connection (keeping clientv3's retries, which are
	// interceptors of the connection). A client with no connection, which
	// calls a server in process (v3client.New, embedded.Member's
	// InProcessClient), needs it: embedded.Member.InProcessKV.
	KV pb.KVClient
}

// Store is a storage.Interface backed by etcd.
type Store struct {
	client *clientv3.Client
	// kv takes the writes.
	kv pb.KVClient
	// inProcess is set when client calls a server in process: requests
	// then skip the require-leader metadata, which only the server's gRPC
	// interceptors read (a server alone in its cluster leads anyway).
	inProcess bool
	progress  *progressRequester
	leases    *leaseManager
}

var (
	_ storage.Interface = (*Store)(nil)
	_ storage.Expirer   = (*Store)(nil)
)

// New returns a Store using client. The Store takes ownership of the client:
// Close closes it. New panics if client has no gRPC connection (it calls a
// server in process) and opts.KV is nil: writes would have no way to etcd.
func New(client *clientv3.Client, opts Options) *Store {
	interval := opts.ProgressInterval
	if interval <= 0 {
		interval = DefaultProgressInterval
	}
	conn := client.ActiveConnection()
	kv := opts.KV
	if kv == nil {
		if conn == nil {
			panic("etcd: New: client has no gRPC connection (in process) and Options.KV is nil")
		}
		kv = pb.NewKVClient(conn)
	}
	return &Store{
		client:    client,
		kv:        kv,
		inProcess: conn == nil,
		progress:  newProgressRequester(client, interval),
		leases:    newLeaseManager(client),
	}
}

// Get returns the key's current value and revision, or storage.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (storage.KeyValue, error) {
	resp, err := s.client.Get(s.leader(ctx), key)
	if err != nil {
		return storage.KeyValue{}, mapErr("get "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return storage.KeyValue{}, fmt.Errorf("etcd: get %s: %w", key, storage.ErrNotFound)
	}
	return keyValue(resp.Kvs[0]), nil
}

// List returns the keys under prefix in key order, read at one revision.
func (s *Store) List(ctx context.Context, prefix string, opts storage.ListOptions) (storage.ListResult, error) {
	if opts.Limit < 0 || opts.Revision < 0 {
		return storage.ListResult{}, fmt.Errorf("etcd: list %s: negative limit or revision", prefix)
	}
	start, end := listRange(prefix, opts.StartKey)
	ops := []clientv3.OpOption{clientv3.WithRange(end)}
	if opts.Revision > 0 {
		ops = append(ops, clientv3.WithRev(opts.Revision))
	}
	if opts.Limit > 0 {
		ops = append(ops, clientv3.WithLimit(opts.Limit))
	}
	resp, err := s.client.Get(s.leader(ctx), start, ops...)
	if err != nil {
		return storage.ListResult{}, mapErr("list "+prefix, err)
	}
	result := storage.ListResult{
		Items:    make([]storage.KeyValue, 0, len(resp.Kvs)),
		Revision: resp.Header.Revision,
		More:     resp.More,
	}
	if opts.Revision > 0 {
		result.Revision = opts.Revision
	}
	for _, kv := range resp.Kvs {
		result.Items = append(result.Items, keyValue(kv))
	}
	if resp.More {
		// Count covers the whole range from start, ignoring the limit.
		result.Remaining = max(resp.Count-int64(len(resp.Kvs)), 0)
	}
	return result, nil
}

// Count returns how many keys are under prefix.
func (s *Store) Count(ctx context.Context, prefix string) (int64, error) {
	start, end := listRange(prefix, "")
	resp, err := s.client.Get(s.leader(ctx), start, clientv3.WithRange(end), clientv3.WithCountOnly())
	if err != nil {
		return 0, mapErr("count "+prefix, err)
	}
	return resp.Count, nil
}

// Create stores value under a new key and returns its revision, or
// storage.ErrExists.
func (s *Store) Create(ctx context.Context, key string, value []byte) (int64, error) {
	return s.create(ctx, key, value, 0)
}

// CreateWithTTL is Create of a key that etcd deletes ttl (rounded up to
// seconds, and up to 5% or 60 s more) after this write: the key is attached
// to a lease that many writes share.
func (s *Store) CreateWithTTL(ctx context.Context, key string, value []byte, ttl time.Duration) (int64, error) {
	return s.withLease(ctx, "create", key, ttl, func(lease int64) (int64, error) {
		return s.create(ctx, key, value, lease)
	})
}

// create puts value under key, attached to lease (0: none), if the key does
// not exist.
func (s *Store) create(ctx context.Context, key string, value []byte, lease int64) (int64, error) {
	resp, err := s.txn(ctx, createTxn([]byte(key), value, lease))
	if err != nil {
		return 0, mapErr("create "+key, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("etcd: create %s: %w", key, storage.ErrExists)
	}
	return resp.Header.Revision, nil
}

// Update replaces the value if the key's revision equals expectedRevision and
// returns the new revision; storage.ErrConflict if it does not,
// storage.ErrNotFound if the key is gone. expectedRevision must be positive.
// A key that had a TTL no longer expires.
func (s *Store) Update(ctx context.Context, key string, value []byte, expectedRevision int64) (int64, error) {
	return s.update(ctx, key, value, expectedRevision, 0)
}

// UpdateWithTTL is Update of a key that etcd then deletes ttl (rounded up to
// seconds, and up to 5% or 60 s more) after this write.
func (s *Store) UpdateWithTTL(ctx context.Context, key string, value []byte, expectedRevision int64, ttl time.Duration) (int64, error) {
	return s.withLease(ctx, "update", key, ttl, func(lease int64) (int64, error) {
		return s.update(ctx, key, value, expectedRevision, lease)
	})
}

// update puts value under key, attached to lease (0: none, which detaches
// the key from any lease), if the key's revision is expectedRevision.
func (s *Store) update(ctx context.Context, key string, value []byte, expectedRevision, lease int64) (int64, error) {
	if expectedRevision <= 0 {
		return 0, fmt.Errorf("etcd: update %s: expected revision %d is not positive", key, expectedRevision)
	}
	resp, err := s.txn(ctx, updateTxn([]byte(key), value, expectedRevision, lease))
	if err != nil {
		return 0, mapErr("update "+key, err)
	}
	if !resp.Succeeded {
		return 0, casFailure("update", key, expectedRevision, resp)
	}
	return resp.Header.Revision, nil
}

// withLease runs write with a lease for ttl. A lease etcd no longer knows
// (revoked by hand, or lost with a restored snapshot) is forgotten and the
// write retried once with a new one.
func (s *Store) withLease(ctx context.Context, op, key string, ttl time.Duration, write func(lease int64) (int64, error)) (int64, error) {
	if ttl <= 0 {
		return 0, fmt.Errorf("etcd: %s %s: TTL %v is not positive", op, key, ttl)
	}
	secs := ttlSeconds(ttl)
	for attempt := 0; ; attempt++ {
		id, err := s.leases.get(leader(ctx), secs)
		if err != nil {
			return 0, mapErr(op+" "+key+": grant lease", err)
		}
		rev, err := write(int64(id))
		if attempt == 0 && errors.Is(err, rpctypes.ErrLeaseNotFound) {
			s.leases.forget(id)
			continue
		}
		return rev, err
	}
}

// Delete removes the key if its revision equals expectedRevision (0: any) and
// returns the deleted value with its last revision, and the deletion's
// revision.
func (s *Store) Delete(ctx context.Context, key string, expectedRevision int64) (storage.KeyValue, int64, error) {
	if expectedRevision < 0 {
		return storage.KeyValue{}, 0, fmt.Errorf("etcd: delete %s: negative expected revision %d", key, expectedRevision)
	}
	if expectedRevision == 0 {
		// clientv3's Delete(ctx, key, WithPrevKV()).
		ctx = s.leader(ctx)
		resp, err := s.kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(key), PrevKv: true}, writeCallOptions...)
		if err != nil {
			err = clientv3.ContextError(ctx, err)
			return storage.KeyValue{}, 0, mapErr("delete "+key, err)
		}
		if resp.Deleted == 0 || len(resp.PrevKvs) == 0 {
			return storage.KeyValue{}, 0, fmt.Errorf("etcd: delete %s: %w", key, storage.ErrNotFound)
		}
		return keyValue(resp.PrevKvs[0]), resp.Header.Revision, nil
	}
	resp, err := s.txn(ctx, deleteTxn([]byte(key), expectedRevision))
	if err != nil {
		return storage.KeyValue{}, 0, mapErr("delete "+key, err)
	}
	if !resp.Succeeded {
		return storage.KeyValue{}, 0, casFailure("delete", key, expectedRevision, resp)
	}
	del := resp.Responses[0].GetResponseDeleteRange()
	if del == nil || len(del.PrevKvs) == 0 {
		// The compare held, so the key existed; a missing PrevKv would be an
		// etcd bug, not a race.
		return storage.KeyValue{}, 0, fmt.Errorf("etcd: delete %s: no previous value in response", key)
	}
	return keyValue(del.PrevKvs[0]), resp.Header.Revision, nil
}

// txn sends a write transaction, as clientv3's Txn.Commit does.
func (s *Store) txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	ctx = s.leader(ctx)
	resp, err := s.kv.Txn(ctx, req, writeCallOptions...)
	if err != nil {
		return nil, clientv3.ContextError(ctx, err)
	}
	return resp, nil
}

// casFailure explains a failed compare-and-swap from its Else Get.
func casFailure(op, key string, expected int64, resp *pb.TxnResponse) error {
	var kvs []*mvccpb.KeyValue
	if len(resp.Responses) > 0 {
		if r := resp.Responses[0].GetResponseRange(); r != nil {
			kvs = r.Kvs
		}
	}
	if len(kvs) == 0 {
		return fmt.Errorf("etcd: %s %s: %w", op, key, storage.ErrNotFound)
	}
	return fmt.Errorf("etcd: %s %s: expected revision %d, found %d: %w",
		op, key, expected, kvs[0].ModRevision, storage.ErrConflict)
}

// Revision returns the store's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	// Any key works: only the response header's revision is used.
	resp, err := s.client.Get(s.leader(ctx), "/", clientv3.WithCountOnly())
	if err != nil {
		return 0, mapErr("revision", err)
	}
	return resp.Header.Revision, nil
}

// RequestProgress asks etcd to send every open watch of this Store a
// Progress event at the current revision (after any changes it has still to
// deliver). A watch cache calls it to learn, without waiting for the next
// periodic Progress, that it has seen everything up to a revision.
func (s *Store) RequestProgress(ctx context.Context) error {
	// The require-leader metadata selects the gRPC stream Watch uses.
	if err := s.client.RequestProgress(leader(ctx)); err != nil {
		return mapErr("request progress", err)
	}
	return nil
}

// IsolatedContext returns ctx marked so that the watches and progress
// requests made with it share a gRPC watch stream of their own, named name.
// etcd answers a progress request only once every watch on the stream has
// caught up, and a watch opened "from now" has not until the next write: on
// a stream of its own, a watch cache's progress requests are not held back
// by other watches of the Store.
func (s *Store) IsolatedContext(ctx context.Context, name string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "drover-watch-stream", name)
}

// Compact discards history before revision.
func (s *Store) Compact(ctx context.Context, revision int64) error {
	if _, err := s.client.Compact(s.leader(ctx), revision); err != nil {
		return mapErr(fmt.Sprintf("compact to %d", revision), err)
	}
	return nil
}

// Close stops background work and closes the client.
func (s *Store) Close() error {
	s.progress.close()
	if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("etcd: close client: %w", err)
	}
	return nil
}

// leader marks ctx so etcd refuses the request when the member has no leader.
// Watches use it even in process: clientv3 picks a watch's stream by the
// context's metadata.
func leader(ctx context.Context) context.Context { return clientv3.WithRequireLeader(ctx) }

// leader marks ctx as the package's leader does for a request over gRPC; in
// process, where no interceptor reads the mark and a lone member leads, it
// returns ctx as it is, saving the metadata's allocations.
func (s *Store) leader(ctx context.Context) context.Context {
	if s.inProcess {
		return ctx
	}
	return leader(ctx)
}

func keyValue(kv *mvccpb.KeyValue) storage.KeyValue {
	return storage.KeyValue{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision}
}

// noEnd is etcd's range end meaning "every key >= the start key".
const noEnd = "\x00"

// listRange returns the etcd range [start, end) for the keys under prefix
// that are >= startKey. A startKey past the prefix gives start >= end, which
// etcd reads as an empty range.
func listRange(prefix, startKey string) (start, end string) {
	start = prefix
	if startKey > prefix {
		start = startKey
	}
	if start == "" {
		start = noEnd // etcd rejects an empty key; "\x00" is the smallest key
	}
	if prefix == "" {
		return start, noEnd
	}
	return start, clientv3.GetPrefixRangeEnd(prefix)
}

// mapErr wraps an etcd client error with context, translating the errors that
// storage.Interface defines.
func mapErr(op string, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("etcd: %s: %w", op, storage.ErrCompacted)
	case errors.Is(err, rpctypes.ErrFutureRev):
		return fmt.Errorf("etcd: %s: %w", op, storage.ErrFutureRevision)
	case unavailable(err):
		return fmt.Errorf("etcd: %s: %w: %w", op, storage.ErrUnavailable, err)
	default:
		return fmt.Errorf("etcd: %s: %w", op, err)
	}
}

// unavailable reports errors that mean "no answer now, try again later": no
// leader, server stopping, request timeouts, unreachable endpoints, and
// deadlines that ran out while waiting for etcd.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var etcdErr rpctypes.EtcdError
	if errors.As(err, &etcdErr) {
		return etcdErr.Code() == codes.Unavailable || etcdErr.Code() == codes.DeadlineExceeded
	}
	if st, ok := status.FromError(err); ok {
		return st.Code() == codes.Unavailable || st.Code() == codes.DeadlineExceeded
	}
	return false
}
