using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using ZcProxy.Core.Configuration;
using ZcProxy.Native;

namespace ZcProxy.Core.Transport;

/// <summary>
/// Lingering close (<see cref="LingeringClose"/>) for connections of Kestrel's socket transport (TLS listeners,
/// <c>ZeroCopy.Enabled: false</c>). That transport ends a connection when the layers above complete its output: its
/// send loop sends what is left, then shuts the socket down both ways and closes it; unread request bytes, or bytes
/// that arrive after the shutdown of the read side (Linux answers those with a reset in FIN_WAIT), reset the
/// connection and the client loses the response. So the layers above (TLS, HTTP) get this connection's pipes instead:
/// they pass reads and writes through and keep the completion of both to themselves. Once the layers above are done, the
/// one decision (<see cref="LingeringClose.Wanted"/>) is asked; if the close lingers, the write side is shut down as
/// soon as the send loop handed the kernel every byte written (no event says so: the kernel's count is polled, 1 ms
/// doubling to 50 ms), and what the client still sends is read by the transport's own receive loop and dropped until
/// the client's FIN or reset, <c>LingeringTimeout</c> of silence, <c>LingeringTime</c> in all, or an abort (server stop);
/// only then are the real pipes completed, and the transport closes as before.
/// </summary>
internal sealed class SocketLingeringClose : IDuplexPipe, ILingerOnClose, ILingeringCandidate
{
    private const int LongestPollMilliseconds = 50;
    private readonly IDuplexPipe _inner;
    private readonly Socket _socket;
    private readonly ConnectionContext _connection;
    private readonly ListenOptions _listen;
    private readonly PassInput _input;
    private readonly PassOutput _output;
    private int _lingerAsked;
    private bool _http2; // set by UseAfterTls before the layers above start

    private SocketLingeringClose(ConnectionContext connection, Socket socket, ListenOptions listen)
    {
        _connection = connection;
        _inner = connection.Transport;
        _socket = socket;
        _listen = listen;
        _input = new PassInput(_inner.Input);
        _output = new PassOutput(_inner.Output);
    }

    PipeReader IDuplexPipe.Input => _input;
    PipeWriter IDuplexPipe.Output => _output;

    public void LingerOnClose() => Volatile.Write(ref _lingerAsked, 1);

    /// <summary>Adds it to a listener (below TLS: it sees the bytes on the wire); connections of another transport pass by.</summary>
    public static ListenOptions UseSocketLingeringClose(ListenOptions listenOptions, RuntimeOptions options, LingeringCounts counts)
    {
        listenOptions.Use(next => connection =>
            connection is not ZeroCopyConnection && connection.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket
                ? ServeAsync(new SocketLingeringClose(connection, socket, listenOptions), next, options, counts)
                : next(connection));
        return listenOptions;
    }

    private static async Task ServeAsync(SocketLingeringClose lingering, ConnectionDelegate next, RuntimeOptions options, LingeringCounts counts)
    {
        var connection = lingering._connection;
        connection.Transport = lingering;
        connection.Features.Set<ILingerOnClose>(lingering);
        try
        {
            await next(connection);
        }
        catch
        {
            connection.Transport = lingering._inner;
            lingering.CompleteTransport(); // the layers above failed: no lingering
            throw;
        }
        connection.Transport = lingering._inner;
        await lingering.CloseAsync(LingeringSettings.Of(options), counts);
    }

    /// <summary>The layers above are done: linger if wanted, then complete the transport's pipes as they asked.</summary>
    private async ValueTask CloseAsync(LingeringSettings settings, LingeringCounts counts)
    {
        try
        {
            if (!LingeringClose.Wanted(this, settings)) return;
            var ended = LingeringEnd.Aborted;
            try { ended = await DropUntilEndAsync(settings); }
            catch (Exception e) when (e is ConnectionResetException || (e is SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.NotConnected }))
            {
                ended = LingeringEnd.ClientClosed;
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException) { } // aborted (server stop)
            finally { counts.Count(ended); }
        }
        finally
        {
            CompleteTransport();
        }
    }

    /// <summary>Completes Kestrel's pipes as the layers above asked: its send loop then shuts the socket down and closes it.</summary>
    private void CompleteTransport()
    {
        _inner.Output.Complete(_output.CompletedWith);
        _inner.Input.Complete(_input.CompletedWith);
    }

    /// <summary>
    /// After TLS (its ALPN is asked for here: once the TLS layer is gone, asking throws): marks HTTP/2 connections, which
    /// are not lingered.
    /// </summary>
    public static ListenOptions UseAfterTls(ListenOptions listenOptions)
    {
        listenOptions.Use(next => connection =>
        {
            if (connection.Features.Get<ITlsApplicationProtocolFeature>()?.ApplicationProtocol.Span.SequenceEqual("h2"u8) == true
                && connection.Features.Get<ILingerOnClose>() is SocketLingeringClose lingering)
                lingering._http2 = true;
            return next(connection);
        });
        return listenOptions;
    }

    /// <summary>HTTP/2 ends its own connections (GOAWAY); a 413 there ends a stream, not the connection.</summary>
    private bool IsHttp2() => _http2 || _listen.Protocols == HttpProtocols.Http2 || CleartextHttp2.IsHttp2(_connection);

    bool ILingeringCandidate.LingeringRuledOut
    {
        get
        {
            if (_output.CompletedWith is not null || IsHttp2()) return true; // the layers above failed: Kestrel aborts such connections
            var input = PeekInput();
            return input is null || input.Value.IsCompleted; // a reset or an abort; the client's FIN
        }
    }

    bool ILingeringCandidate.LingerAsked => Volatile.Read(ref _lingerAsked) != 0;

    bool ILingeringCandidate.HasUnreadBytes()
    {
        var input = PeekInput();
        if (input is null) return false; // reset or aborted meanwhile
        if (input.Value.HasBytes) return true;
        try { return _socket.Available > 0; }
        catch (Exception) { return false; }
    }

    /// <summary>
    /// What the transport's receive loop holds, looked at without consuming it: bytes the layers above did not read, and
    /// whether the client's FIN came. Null when the loop ended with a reset or an abort.
    /// </summary>
    private (bool HasBytes, bool IsCompleted)? PeekInput()
    {
        try
        {
            if (!_inner.Input.TryRead(out var result)) return (false, false);
            _inner.Input.AdvanceTo(result.Buffer.Start); // looked at only
            return (!result.Buffer.IsEmpty, result.IsCompleted);
        }
        catch (Exception) { return null; }
    }

    private async ValueTask<LingeringEnd> DropUntilEndAsync(LingeringSettings settings)
    {
        var input = _inner.Input;
        if (_inner.Output is { CanGetUnflushedBytes: true, UnflushedBytes: > 0 } output)
        {
            using var bound = new CancellationTokenSource(settings.Time);
            await output.FlushAsync(bound.Token); // what the layers above wrote but did not flush, before the FIN
        }
        var bounds = LingeringBounds.Start(TimeProvider.System, settings);
        bool writeShut = false;
        int poll = 1;
        // One timer for both bounds and the poll: it cancels the pending read, and the loop looks at the clock.
        using var timer = new Timer(static s => ((PipeReader)s!).CancelPendingRead(), input, Timeout.Infinite, Timeout.Infinite);
        while (true)
        {
            if (bounds.Reached() is { } reached) return reached;
            if (!writeShut && AllWrittenTakenByKernel())
            {
                _socket.Shutdown(SocketShutdown.Send); // the response is followed by a FIN
                writeShut = true;
            }
            var wait = bounds.Left();
            if (!writeShut)
            {
                wait = TimeSpan.FromMilliseconds(Math.Min(wait.TotalMilliseconds, poll));
                poll = Math.Min(poll * 2, LongestPollMilliseconds);
            }
            timer.Change(wait, Timeout.InfiniteTimeSpan);
            var result = await input.ReadAsync();
            if (result.IsCanceled) continue;
            bool dropped = !result.Buffer.IsEmpty;
            input.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted) return LingeringEnd.ClientClosed;
            if (dropped) bounds.ByteArrived();
        }
    }

    /// <summary>
    /// Whether the send loop handed the kernel every byte the layers above wrote (it holds them in its pipe until then):
    /// a FIN before that would cut the response short. Not TCP (no count): taken as yes.
    /// </summary>
    private bool AllWrittenTakenByKernel()
    {
        var handle = _socket.SafeHandle;
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            long taken = Syscalls.BytesTakenByKernel((int)handle.DangerousGetHandle());
            return taken < 0 || taken >= _output.Written;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    /// <summary>The transport's input as the layers above see it: everything passes, but their Complete is kept.</summary>
    private sealed class PassInput(PipeReader inner) : PipeReader
    {
        public Exception? CompletedWith { get; private set; }

        public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);
        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);
        public override void CancelPendingRead() => inner.CancelPendingRead();
        public override void Complete(Exception? exception = null) => CompletedWith ??= exception;
        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default) => inner.ReadAsync(cancellationToken);
        public override bool TryRead(out ReadResult result) => inner.TryRead(out result);
    }

    /// <summary>The transport's output as the layers above see it: writes pass and are counted, their Complete is kept.</summary>
    private sealed class PassOutput(PipeWriter inner) : PipeWriter
    {
        public Exception? CompletedWith { get; private set; }
        /// <summary>Bytes written so far (all of them, TLS records included: this sits below TLS).</summary>
        public long Written { get; private set; }

        public override void Advance(int bytes)
        {
            Written += bytes;
            inner.Advance(bytes);
        }

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            Written += source.Length;
            return inner.WriteAsync(source, cancellationToken);
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);
        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);
        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);
        public override void CancelPendingFlush() => inner.CancelPendingFlush();
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;
        public override long UnflushedBytes => inner.UnflushedBytes;
        public override void Complete(Exception? exception = null) => CompletedWith ??= exception;
    }
}
