using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;
using Microsoft.AspNetCore.Connections;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Transport;

/// <summary>
/// The connection's input, pull-based: recv(2) runs only when Kestrel asks (ReadAsync) and nothing unexamined is
/// buffered, so bytes nobody asked for (a request body that will be spliced) stay in the kernel. Bytes land in
/// pooled pinned blocks, chained as a ReadOnlySequence; AdvanceTo frees consumed blocks, so an idle keep-alive
/// connection holds no buffer. Readiness is tracked per socket (<see cref="Loops.LoopSocket"/>): after a short read
/// the socket is known drained and the next read waits for an edge instead of a recv that would surely EAGAIN.
/// One reader at a time, like any PipeReader; CancelPendingRead and Abort may come from any thread.
/// <para>
/// The input hole (a spliced request body): while <see cref="BeginSplice"/> is in force the socket belongs to the
/// splice and this reader never recvs; every byte the splice takes from the socket is credited here as a scratch byte
/// (<see cref="CreditSpliced"/>), so Kestrel reads the body to its exact end (its Content-Length accounting, keep-alive)
/// while the forwarder skips those bytes. Credited bytes come first, so after a splice that stopped early the rest of
/// the body is still read from the socket in order.
/// </para>
/// </summary>
internal sealed class ZeroCopyInput : PipeReader, IValueTaskSource<ReadResult>
{
    /// <summary>A recv into less free space than this takes a fresh block instead.</summary>
    private const int MinimumReadSpace = 2048;
    private readonly ZeroCopyConnection _connection;
    private Segment? _head, _tail;
    private int _headStart;      // first unconsumed byte of _head
    private bool _examinedAll;   // the last AdvanceTo examined every buffered byte: the next read needs new bytes
    private int _seenSequence;   // the socket's read sequence when it was last found drained
    private int _cancelRequested;
    private bool _endOfStream;
    private bool _completed;
    private bool _drained;       // the last recv came back short: wait for an edge before the next one
    private bool _splicing;      // a request body is being spliced from the socket: no recv

    private ManualResetValueTaskSourceCore<ReadResult> _pending; // the read waiting for the socket (one reader at a time)
    private CancellationToken _pendingToken;
    private CancellationTokenRegistration _pendingRegistration;
    private ValueTask<bool> _waiting;

    public ZeroCopyInput(ZeroCopyConnection connection) => _connection = connection;

    /// <summary>True once recv returned 0 (the peer finished sending).</summary>
    public bool EndOfStream => Volatile.Read(ref _endOfStream);

    /// <summary>Bytes held for Kestrel and not consumed yet (received, or credited scratch).</summary>
    internal long Buffered => _head is null ? 0 : _tail!.RunningIndex + _tail.End - (_head.RunningIndex + _headStart);

    public override bool TryRead(out ReadResult result)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        if (Interlocked.Exchange(ref _cancelRequested, 0) == 1)
        {
            result = new ReadResult(Sequence(), isCanceled: true, isCompleted: _endOfStream);
            return true;
        }
        if (Buffered > 0 || _endOfStream)
        {
            result = new ReadResult(Sequence(), isCanceled: false, isCompleted: _endOfStream);
            return true;
        }
        result = default;
        return false;
    }

    /// <summary>
    /// Reads without a state machine of its own: a read that has to wait for the socket is this object's own pending
    /// value task (<see cref="OnReadable"/> resumes it on the loop), so a waiting read allocates nothing, however many
    /// requests the loop has in flight (a pooled async frame is reused only while one per thread is free).
    /// </summary>
    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        int seen;
        try
        {
            ObjectDisposedException.ThrowIf(_completed, this);
            if (TryReadNow(cancellationToken, out var result, out seen)) return new ValueTask<ReadResult>(result);
        }
        catch (Exception e)
        {
            return ValueTask.FromException<ReadResult>(e); // as an async method would: a failed read, not a throwing call
        }
        _pending.Reset();
        _pendingToken = cancellationToken;
        _pendingRegistration = cancellationToken.CanBeCanceled
            ? cancellationToken.UnsafeRegister(static s => ((ZeroCopyInput)s!)._connection.ClientSocket.WakeReader(), this) : default;
        var version = _pending.Version;
        WaitThenRead(seen);
        return new ValueTask<ReadResult>(this, version);
    }

    /// <summary>
    /// The read loop up to the point where it would wait: true with a result (or it throws), false when the socket
    /// has to become readable first (<paramref name="seen"/>: the read sequence to wait past).
    /// </summary>
    private bool TryReadNow(CancellationToken cancellationToken, out ReadResult result, out int seen)
    {
        var socket = _connection.ClientSocket;
        while (true)
        {
            if (Interlocked.Exchange(ref _cancelRequested, 0) == 1)
            {
                result = new ReadResult(Sequence(), isCanceled: true, isCompleted: _endOfStream);
                seen = 0;
                return true;
            }
            cancellationToken.ThrowIfCancellationRequested();
            if (_connection.InputFailure is { } failure) throw failure;
            if ((Buffered > 0 && !_examinedAll) || _endOfStream)
            {
                result = new ReadResult(Sequence(), isCanceled: false, isCompleted: _endOfStream);
                seen = 0;
                return true;
            }
            // The splice owns the socket's bytes: a read that wants more than was credited is a bug, not a wait.
            if (_splicing) throw new InvalidOperationException("the request body is being spliced: the socket is not the reader's");

            int sequence = socket.ReadSequence;
            // A FIN or reset is reported once: after it, recv answers at once (0 or an error), so never wait for another edge.
            if (!_drained || sequence != _seenSequence || socket.TroubleSeen != 0)
            {
                var r = Receive();
                if (r.Ok && r.Bytes > 0)
                {
                    _examinedAll = false;
                    continue;
                }
                if (r.Ok)
                {
                    Volatile.Write(ref _endOfStream, true);
                    _connection.OnEndOfStream();
                    continue;
                }
                if (!r.WouldBlock) throw _connection.OnReceiveFailed(r.ToException("recv"));
                _drained = true;
                _seenSequence = sequence;
                continue; // the loop re-checks the sequence: an edge may have come meanwhile
            }
            result = default;
            seen = _seenSequence;
            return false;
        }
    }

    /// <summary>Waits for the socket (past <paramref name="seen"/>), then reads; completes the pending read when it can.</summary>
    private void WaitThenRead(int seen)
    {
        try
        {
            while (true)
            {
                if (!PassedAtOnce(_connection.ClientSocket.WaitReadableAsync(seen))) return;
                if (TryReadNow(_pendingToken, out var result, out seen))
                {
                    FinishRead(result, null);
                    return;
                }
            }
        }
        catch (Exception e)
        {
            FinishRead(default, e);
        }
    }

    /// <summary>True when <paramref name="wait"/> is already over; else <see cref="OnReadable"/> runs when it is.</summary>
    private bool PassedAtOnce(ValueTask<bool> wait)
    {
        if (wait.IsCompleted)
        {
            wait.GetAwaiter().GetResult();
            return true;
        }
        _waiting = wait;
        // A static delegate with this input as its state: an Action bound to the input was 64 B per idle connection.
        _connection.ClientSocket.OnReadWaitOver(static s => ((ZeroCopyInput)s!).OnReadable(), this);
        return false;
    }

    private void OnReadable()
    {
        try
        {
            var wait = _waiting;
            _waiting = default;
            wait.GetAwaiter().GetResult();
            if (TryReadNow(_pendingToken, out var result, out int seen)) FinishRead(result, null);
            else WaitThenRead(seen);
        }
        catch (Exception e)
        {
            FinishRead(default, e);
        }
    }

    /// <summary>Ends the pending read; its continuation (Kestrel's parser) runs inline, on the loop.</summary>
    private void FinishRead(ReadResult result, Exception? error)
    {
        // Before the continuation: it may start the next read, which registers anew.
        _pendingRegistration.Dispose();
        _pendingRegistration = default;
        _pendingToken = default;
        if (error is null) _pending.SetResult(result);
        else _pending.SetException(error);
    }

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => _pending.GetResult(token);
    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _pending.GetStatus(token);
    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        => _pending.OnCompleted(continuation, state, token, flags);

    /// <summary>Chains <paramref name="segment"/> after the tail (or starts the sequence with it); it becomes the tail.</summary>
    private Segment Append(Segment segment)
    {
        var tail = _tail;
        if (tail is null)
        {
            _head = segment;
            _headStart = 0;
        }
        else
        {
            segment.RunningIndex = tail.RunningIndex + tail.End;
            tail.SetNext(segment);
        }
        return _tail = segment;
    }

    /// <summary>One recv into the tail block's free space (or a fresh block). A short read means the socket is drained.</summary>
    private SysResult Receive()
    {
        var tail = _tail;
        if (tail is null || !tail.Pooled || tail.Block.Length - tail.End < MinimumReadSpace)
        {
            tail = Append(Segment.Rent(_connection.Shared.RentBlock(ZeroCopyTransport.BlockSize), pooled: true));
        }
        int space = tail.Block.Length - tail.End;
        int sequence = _connection.ClientSocket.ReadSequence;
        SysResult r;
        if (!_connection.TryLeaseClient(out var lease)) return new SysResult(0, (int)Errno.EBADF);
        using (lease) r = Syscalls.Recv(lease.Fd, tail.Block.AsSpan(tail.End, space), 0);
        if (r.Ok && r.Bytes > 0)
        {
            tail.Advance((int)r.Bytes);
            if (r.Bytes < space)
            {
                _drained = true;
                _seenSequence = sequence;
            }
            else _drained = false;
            if ((_connection.ClientSocket.TroubleSeen & EPOLLRDHUP) != 0) _connection.OnBytesBeforeHangUpTaken();
        }
        if (!r.Ok || r.Bytes == 0) ReleaseEmptyTail();
        return r;
    }

    private void ReleaseEmptyTail()
    {
        if (_head is not null && _head == _tail && _head.End == _headStart)
        {
            Return(_head);
            _head = _tail = null;
            _headStart = 0;
        }
    }

    /// <summary>What a read returns now: every unconsumed byte (the tap slices what Kestrel consumed from it).</summary>
    internal ReadOnlySequence<byte> Sequence()
        => _head is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(_head, _headStart, _tail!, _tail!.End);

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (_head is null)
        {
            _examinedAll = true;
            return;
        }
        var consumedSegment = (Segment?)consumed.GetObject() ?? _head;
        int consumedIndex = consumed.GetInteger();
        var examinedSegment = (Segment?)examined.GetObject() ?? consumedSegment;
        _examinedAll = examinedSegment == _tail && examined.GetInteger() >= _tail!.End;
        // Free every block before the consumed position.
        while (_head != consumedSegment)
        {
            var done = _head!;
            _head = (Segment?)done.Next ?? throw new InvalidOperationException("AdvanceTo past the buffered data");
            Return(done);
        }
        _headStart = consumedIndex;
        if (_head == _tail && _headStart == _tail!.End)
        {
            // Everything consumed: the block goes back to the pool (an idle connection holds none).
            Return(_head);
            _head = _tail = null;
            _headStart = 0;
        }
    }

    /// <summary>
    /// Hands over the bytes read from the socket but not consumed by Kestrel (a client's first bytes after an upgrade's
    /// request head) and frees the buffers: the caller sends them on before taking over the socket itself.
    /// </summary>
    internal byte[] TakeBuffered()
    {
        var buffered = Sequence().ToArray();
        while (_head is { } done)
        {
            _head = (Segment?)done.Next; // before Return: a returned segment forgets its chain
            Return(done);
        }
        _tail = null;
        _headStart = 0;
        return buffered;
    }

    /// <summary>
    /// Starts the input hole: the socket's next bytes are spliced by the caller, not read here. False when bytes are
    /// still held in user space (they must go first, read through Kestrel as usual).
    /// </summary>
    internal bool BeginSplice()
    {
        if (Buffered > 0 || _endOfStream || _splicing) return false;
        _splicing = true;
        return true;
    }

    /// <summary><paramref name="bytes"/> were spliced out of the socket: Kestrel reads as many scratch bytes in their place.</summary>
    internal void CreditSpliced(long bytes)
    {
        var scratch = _connection.Shared.Scratch;
        while (bytes > 0)
        {
            var tail = _tail;
            if (tail is null || tail.Pooled || tail.End == scratch.Length)
            {
                tail = Append(Segment.Rent(scratch, pooled: false));
            }
            int add = (int)Math.Min(bytes, scratch.Length - tail.End);
            tail.Advance(add);
            bytes -= add;
            _examinedAll = false;
        }
    }

    /// <summary>Ends the input hole: what was not spliced is read from the socket again, after the credited bytes.</summary>
    internal void EndSplice()
    {
        _splicing = false;
        _drained = false; // the splice drained the socket as far as this reader knows nothing: recv again before waiting
    }

    private void Return(Segment segment)
    {
        if (segment.Pooled) _connection.Shared.ReturnBlock(segment.Block);
        Segment.Recycle(segment);
    }

    public override void CancelPendingRead()
    {
        Interlocked.Exchange(ref _cancelRequested, 1);
        _connection.ClientSocket.WakeReader();
    }

    public override void Complete(Exception? exception = null)
    {
        if (_completed) return;
        _completed = true;
        while (_head is { } done)
        {
            _head = (Segment?)done.Next; // before Return: a returned segment forgets its chain
            Return(done);
        }
        _tail = null;
    }

    /// <summary>
    /// A block in the chain: a pooled one bytes are received into, or the shared scratch standing for spliced bytes.
    /// Memory always starts at the block's first byte (positions index from there).
    /// </summary>
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        /// <summary>
        /// Spare segment objects of this thread (the loop's, where reads and AdvanceTo run): a request's head takes one
        /// and gives it back when consumed, so it need not be allocated each time. Bounded; a connection keeps none.
        /// </summary>
        [ThreadStatic] private static Stack<Segment>? t_spares;
        private const int MaxSpares = 64;

        private Segment(byte[] block, bool pooled) => Reset(block, pooled);

        public static Segment Rent(byte[] block, bool pooled)
        {
            if (t_spares is { Count: > 0 } spares)
            {
                var segment = spares.Pop();
                segment.Reset(block, pooled);
                return segment;
            }
            return new Segment(block, pooled);
        }

        /// <summary>Its bytes were consumed (the reader's contract: nobody looks at them again) or dropped.</summary>
        public static void Recycle(Segment segment)
        {
            segment.Reset([], pooled: false); // holds no block while spare
            var spares = t_spares ??= new Stack<Segment>(MaxSpares);
            if (spares.Count < MaxSpares) spares.Push(segment);
        }

        private void Reset(byte[] block, bool pooled)
        {
            Block = block;
            Pooled = pooled;
            End = 0;
            Memory = block.AsMemory(0, 0);
            Next = null;
            base.RunningIndex = 0;
        }

        public byte[] Block { get; private set; } = [];
        /// <summary>False for the shared scratch: never returned to the pool, never received into.</summary>
        public bool Pooled { get; private set; }
        public int End { get; private set; }

        public new long RunningIndex
        {
            get => base.RunningIndex;
            set => base.RunningIndex = value;
        }

        public void Advance(int bytes)
        {
            End += bytes;
            Memory = Block.AsMemory(0, End);
        }

        public void SetNext(Segment next) => Next = next;
    }
}
