using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;
using ZcProxy.Core.Upstream;
using ZcProxy.Native;
using static ZcProxy.Native.LinuxConstants;

namespace ZcProxy.Core.Output;

/// <summary>
/// An upstream body of known length (Content-Length), or one that ends when the upstream closes (length -1). A
/// known length with nothing prefetched can be spliced: upstream socket → leased pipe → client socket, the bytes
/// never in user space. Otherwise it is copied, never past its length.
/// </summary>
internal sealed partial class SocketBody : UpstreamBody
{
    private const int CopyBufferSize = 64 * 1024;
    private long _length;
    private ReadOnlyMemory<byte> _prefix;
    private int _lead;
    private long _left;
    private byte[]? _buffer;
    private ResponseEnds? _ends; // reused by the bodies this object carries (one at a time), with its waits

    public SocketBody(UpstreamConnection connection, long length, TimeSpan idleTimeout, CancellationToken aborted) : base(connection, idleTimeout, aborted)
        => Start(length);

    /// <summary>
    /// The body of the response just read on <paramref name="connection"/>, in the object its previous response's body
    /// used (disposed by then: a connection carries one exchange at a time), so a keep-alive connection makes one.
    /// </summary>
    public static SocketBody For(UpstreamConnection connection, long length, TimeSpan idleTimeout, CancellationToken aborted)
    {
        if (connection.LastBody is not { } body) return connection.LastBody = new SocketBody(connection, length, idleTimeout, aborted);
        body.Reuse(idleTimeout, aborted);
        body.Start(length);
        return body;
    }

    private void Start(long length)
    {
        _length = length;
        _left = length;
        _lead = 0;
        // The head reader never keeps more than Content-Length, so the whole prefix belongs to this body.
        _prefix = Connection.PrefetchedBody;
    }

    public override long Length => _length;

    /// <summary>A prefix (bytes the head's recv took along) goes first as data, the rest is spliced.</summary>
    public override BodyMechanism? Hole => _length > 0 ? BodyMechanism.Splice : null;

    /// <summary>Only a Content-Length body read to its end, with nothing read past it, leaves the connection at a message boundary.</summary>
    public override bool EndedCleanly => _length >= 0 && _left == 0 && !Connection.OverRead;

    public override async ValueTask<SourceRead> ReadAsync(CancellationToken cancellationToken)
    {
        if (!_prefix.IsEmpty)
        {
            var prefix = _prefix;
            _prefix = default;
            if (_length >= 0) _left -= prefix.Length;
            return SourceRead.Of(prefix);
        }
        if (_left == 0) return SourceRead.End;
        _buffer ??= ArrayPool<byte>.Shared.Rent(CopyBufferSize);
        int want = _length < 0 ? _buffer.Length : (int)Math.Min(_buffer.Length, _left);
        int n;
        try { n = await Reader.ReadAsync(_buffer.AsMemory(0, want), cancellationToken); }
        catch (Exception e) { return Failed(e, cancellationToken); }
        if (n == 0)
            return _length < 0 ? SourceRead.End : SourceRead.Failed(BodyOutcome.SourceEnded, $"the upstream closed with {_left} of {_length} body bytes unsent");
        if (_length >= 0)
        {
            _left -= n;
            if (_left == 0) Connection.ResponseReadToEnd(); // the next head read waits for an edge, not an EAGAIN
        }
        return SourceRead.Of(_buffer.AsMemory(0, n));
    }

    /// <summary>The prefix goes with the response head (one send instead of two); the move splices the rest.</summary>
    public override ReadOnlyMemory<byte> TakeLead()
    {
        var lead = _prefix;
        _prefix = default;
        _lead = lead.Length;
        _left -= lead.Length;
        return lead;
    }

    /// <summary>
    /// upstream → pipe → client (<see cref="SpliceMove"/>). Each wait is bounded by the body-idle timeout: a stalled
    /// upstream timed out, a client that takes nothing failed; a client that hangs up meanwhile fails the wait for
    /// upstream data (a reset client never waits on a slow upstream).
    /// A body whose splices complete at once (most 64 KiB ones) runs without a frame of its own here.
    /// </summary>
    public override ValueTask<BodyResult> MoveAsync(ZeroCopyConnection to, SplicePipe? pipe, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(pipe);
        Connection.BodyIsSpliced();
        // Called once the lead left with the head: it was in user space, so it counts as copied.
        if (_lead > 0) to.Shared.Metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Response, _lead);
        _lead = 0;
        var ends = Ends(to);
        if (!_prefix.IsEmpty) return MoveAfterPrefixAsync(ends, pipe, cancellationToken);
        var moving = SpliceMove.RunAsync(ends, pipe, _left, cancellationToken); // an async method: it throws into its ValueTask
        if (!moving.IsCompleted) return ReleaseAfterAsync(moving, ends);
        try { return new ValueTask<BodyResult>(moving.GetAwaiter().GetResult()); }
        finally { ends.Release(); }
    }

    /// <summary>The prefix (sent as data), then the splice.</summary>
    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))] // suspended with the splice: a pooled frame, not a box per body
    private async ValueTask<BodyResult> MoveAfterPrefixAsync(ResponseEnds ends, SplicePipe pipe, CancellationToken cancellationToken)
    {
        try
        {
            var sent = await SendPrefixAsync(ends, cancellationToken);
            if (!sent.IsComplete) return sent;
            return await SpliceMove.RunAsync(ends, pipe, _left, cancellationToken);
        }
        finally { ends.Release(); }
    }

    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))] // suspended with the splice: a pooled frame, not a box per body
    private static async ValueTask<BodyResult> ReleaseAfterAsync(ValueTask<BodyResult> moving, ResponseEnds ends)
    {
        try { return await moving; }
        finally { ends.Release(); }
    }

    /// <summary>This body's splice ends, toward <paramref name="to"/> for one move (released after it).</summary>
    private ResponseEnds Ends(ZeroCopyConnection to) => (_ends ??= new ResponseEnds(this)).Begin(to);

    /// <summary>
    /// The ends of a response body's splice, one per body object and begun per move. A loop-native upstream socket is non-blocking and registered with the
    /// client's loop already; a .NET one joins the client's loop at its first wait (splice honours the socket's own
    /// O_NONBLOCK, which .NET's async sockets have), so a body that never waits costs no epoll_ctl. A fresh registration
    /// starts at sequence 0, and EPOLL_CTL_ADD reports data that is already there.
    /// </summary>
    private sealed class ResponseEnds : SpliceEnds
    {
        private readonly SocketBody _body;
        private ZeroCopyConnection _client = null!;
        private bool _borrowed;
        private LoopSocket? _upstream;

        public ResponseEnds(SocketBody body) => _body = body;

        /// <summary>A move toward <paramref name="client"/> begins; <see cref="Release"/> ends it.</summary>
        public ResponseEnds Begin(ZeroCopyConnection client)
        {
            _client = client;
            _upstream = _body.Connection.Readiness;
            _borrowed = _upstream is null;
            if (_borrowed && FdLease.TryAcquire(Source, out var lease)) using (lease) Syscalls.SetNonBlocking(lease.Fd);
            return this;
        }

        public ZeroCopyConnection Client => _client;
        protected override bool ClientAborted => _client.IsAborted;
        public override SafeHandle Source => _body.Connection.Socket.SafeHandle;
        public override SafeHandle Sink => _client.ClientHandle;
        public override int SourceSequence => Volatile.Read(ref _upstream)?.ReadSequence ?? 0;
        protected override LoopSocket SinkSocket => _client.ClientSocket;
        protected override LoopSocket SourceSocket() => _upstream ??= _client.RegisterSource(Source);
        protected override void WakeSource() => Volatile.Read(ref _upstream)?.WakeReader(); // nothing waits on a source not registered yet
        protected override LoopSocket? RegisteredSource => Volatile.Read(ref _upstream);
        protected override TimeSpan SourceIdle => _body.IdleTimeout;
        protected override TimeSpan SinkIdle => _body.IdleTimeout;

        protected override BodyResult SourceStalled()
            => BodyResult.Failed(BodyOutcome.SourceTimedOut, $"the upstream sent nothing for {_body.IdleTimeout.TotalMilliseconds:0} ms");
        protected override BodyResult SinkStalled()
            => BodyResult.Failed(BodyOutcome.ClientFailed, $"the client took no byte for {_body.IdleTimeout.TotalMilliseconds:0} ms");
        public override BodyResult SourceFailed(string reason) => BodyResult.Failed(BodyOutcome.SourceFailed, $"upstream failed: {reason}");
        public override BodyResult SourceEnded(long left) => BodyResult.Failed(BodyOutcome.SourceEnded, $"the upstream closed {left} bytes before the promised length");
        public override BodyResult SinkFailed(string reason) => BodyResult.Failed(BodyOutcome.ClientFailed, $"client connection failed: {reason}");
        public override BodyResult Cancelled() => BodyResult.Failed(BodyOutcome.ClientFailed, "the client connection was aborted");

        /// <summary>
        /// The body is out of the upstream socket: its next head read waits for an edge rather than a recv that would
        /// EAGAIN (a borrowed .NET socket's sequences are this move's registration's, not the connection's).
        /// </summary>
        public override void SourceReadToEnd(int sequence)
        {
            if (!_borrowed) _body.Connection.ResponseReadToEnd(sequence);
        }

        public override void Delivered(long bytes)
        {
            _body._left -= bytes;
            _client.Shared.Metrics.AddBodyBytes(BodyMechanism.Splice, BodyDirection.Response, bytes);
        }

        /// <summary>A borrowed (.NET) upstream socket leaves the client's loop again; its fd stays open. The client is let go.</summary>
        public void Release()
        {
            EndWaits();
            if (_borrowed && _upstream is not null) _client.UnregisterSource(_upstream);
            _upstream = null;
            _client = null!;
        }
    }

    /// <summary>The body bytes the head's recv took along, sent as data ahead of the splice (counted as copied: they were in user space).</summary>
    private async ValueTask<BodyResult> SendPrefixAsync(ResponseEnds ends, CancellationToken cancellationToken)
    {
        var to = ends.Client;
        while (!_prefix.IsEmpty)
        {
            if (cancellationToken.IsCancellationRequested) return ends.Cancelled();
            int sequence = ends.SinkSequence;
            SysResult r;
            if (!to.TryLeaseClient(out var client)) return ends.SinkFailed("its socket was closed");
            using (client) r = Syscalls.Send(client.Fd, _prefix.Span, MSG_DONTWAIT | MSG_MORE);
            if (r.Ok && r.Bytes > 0)
            {
                _prefix = _prefix[(int)r.Bytes..];
                _left -= r.Bytes;
                to.Shared.Metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Response, r.Bytes);
            }
            else if (r.WouldBlock)
            {
                var ready = await ends.SinkWritableAsync(sequence, cancellationToken);
                if (!ready.IsComplete) return ready;
            }
            else return ends.SinkFailed(r.Ok ? "send moved 0 bytes" : r.ToException("send").Message);
        }
        return BodyResult.Complete;
    }

    public override ValueTask DisposeAsync()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return base.DisposeAsync();
    }
}
