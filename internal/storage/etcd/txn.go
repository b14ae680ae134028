package etcd

import (
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// Writes are etcd transactions built here as the request clientv3 would
// send, without its builder: clientv3.Txn clones every Cmp through
// proto.Clone (reflection), and clientv3.OpPut takes the value as a string,
// so that a stored object was copied twice on its way to etcd. Here the
// value goes as the caller's []byte, and a request is one allocation (plus
// the key's bytes).

// writeCallOptions are clientv3's default call options (a client built with
// clientv3.New and no MaxCallSendMsgSize or MaxCallRecvMsgSize): wait for a
// connection rather than fail while the client reconnects, and its message
// size limits. A client that calls a server in process ignores them.
var writeCallOptions = []grpc.CallOption{
	grpc.WaitForReady(true),
	grpc.MaxCallSendMsgSize(2 * 1024 * 1024),
	grpc.MaxCallRecvMsgSize(math.MaxInt32),
}

// writeTxn is a transaction of one compare on a key, one request on success
// (a put or a delete) and, on failure, a keys-only get of the key that tells
// a conflict from a missing key. Its messages live in this one struct so
// that building a request costs one allocation.
type writeTxn struct {
	req pb.TxnRequest

	cmps    [1]*pb.Compare
	cmp     pb.Compare
	created pb.Compare_CreateRevision
	mod     pb.Compare_ModRevision

	success [1]*pb.RequestOp
	then    pb.RequestOp
	put     pb.RequestOp_RequestPut
	putReq  pb.PutRequest
	del     pb.RequestOp_RequestDeleteRange
	delReq  pb.DeleteRangeRequest

	failure [1]*pb.RequestOp
	els     pb.RequestOp
	get     pb.RequestOp_RequestRange
	getReq  pb.RangeRequest
}

// createTxn puts value under key, attached to lease (0: none), if the key
// does not exist: clientv3's
//
//	Txn().If(Compare(CreateRevision(key), "=", 0)).Then(OpPut(key, value, WithLease(lease)))
func createTxn(key, value []byte, lease int64) *pb.TxnRequest {
	t := new(writeTxn)
	t.createdIs(key, 0)
	t.putThen(key, value, lease)
	return &t.req
}

// updateTxn puts value under key, attached to lease (0: none), if the key's
// mod revision is expected, and gets the key otherwise: clientv3's
//
//	Txn().If(Compare(ModRevision(key), "=", expected)).
//		Then(OpPut(key, value, WithLease(lease))).
//		Else(OpGet(key, WithKeysOnly()))
func updateTxn(key, value []byte, expected, lease int64) *pb.TxnRequest {
	t := new(writeTxn)
	t.modifiedIs(key, expected)
	t.putThen(key, value, lease)
	t.getElse(key)
	return &t.req
}

// deleteTxn deletes key, returning its previous value, if its mod revision
// is expected, and gets the key otherwise: clientv3's
//
//	Txn().If(Compare(ModRevision(key), "=", expected)).
//		Then(OpDelete(key, WithPrevKV())).
//		Else(OpGet(key, WithKeysOnly()))
func deleteTxn(key []byte, expected int64) *pb.TxnRequest {
	t := new(writeTxn)
	t.modifiedIs(key, expected)
	t.delReq = pb.DeleteRangeRequest{Key: key, PrevKv: true}
	t.del.RequestDeleteRange = &t.delReq
	t.then.Request = &t.del
	t.success[0] = &t.then
	t.req.Success = t.success[:]
	t.getElse(key)
	return &t.req
}

// createdIs sets the transaction's one compare: key's create revision is
// rev.
func (t *writeTxn) createdIs(key []byte, rev int64) {
	t.created.CreateRevision = rev
	t.cmp.Key, t.cmp.Target, t.cmp.Result = key, pb.Compare_CREATE, pb.Compare_EQUAL
	t.cmp.TargetUnion = &t.created
	t.cmps[0] = &t.cmp
	t.req.Compare = t.cmps[:]
}

// modifiedIs sets the transaction's one compare: key's mod revision is rev.
func (t *writeTxn) modifiedIs(key []byte, rev int64) {
	t.mod.ModRevision = rev
	t.cmp.Key, t.cmp.Target, t.cmp.Result = key, pb.Compare_MOD, pb.Compare_EQUAL
	t.cmp.TargetUnion = &t.mod
	t.cmps[0] = &t.cmp
	t.req.Compare = t.cmps[:]
}

func (t *writeTxn) putThen(key, value []byte, lease int64) {
	t.putReq.Key = key
	t.putReq.Value = value
	t.putReq.Lease = lease
	t.put.RequestPut = &t.putReq
	t.then.Request = &t.put
	t.success[0] = &t.then
	t.req.Success = t.success[:]
}

func (t *writeTxn) getElse(key []byte) {
	t.getReq.Key = key
	t.getReq.KeysOnly = true
	t.get.RequestRange = &t.getReq
	t.els.Request = &t.get
	t.failure[0] = &t.els
	t.req.Failure = t.failure[:]
}
