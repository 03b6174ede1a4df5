using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Output;

/// <summary>
/// An upstream response body, read from its connection: the bytes the head reader consumed with the head
/// (<see cref="UpstreamConnection.PrefetchedBody"/>) come first, every read waits at most the body-idle timeout.
/// Disposing it hands the prefetched buffer back to the connection; the connection itself stays the caller's.
/// </summary>
internal abstract class UpstreamBody : BodySource
{
    private CancellationToken _aborted;
    private IdleTimeoutReader? _reader;

    private protected UpstreamBody(UpstreamConnection connection, TimeSpan idleTimeout, CancellationToken aborted)
    {
        Connection = connection;
        IdleTimeout = idleTimeout;
        _aborted = aborted;
    }

    private protected UpstreamConnection Connection { get; }
    private protected TimeSpan IdleTimeout { get; private set; }

    /// <summary>Makes a disposed body the next response's on the same connection (see <see cref="SocketBody.For"/>).</summary>
    private protected void Reuse(TimeSpan idleTimeout, CancellationToken aborted)
    {
        IdleTimeout = idleTimeout;
        _aborted = aborted;
        _reader = null;
    }

    /// <summary>The connection's stream, each read bounded by the idle timeout; made at the first read (a small body often arrived whole with its head).</summary>
    private protected IdleTimeoutReader Reader => _reader ??= new IdleTimeoutReader(Connection.Stream, IdleTimeout, _aborted);

    /// <summary>The body as its head frames it: Content-Length (none: 0), chunked, or until the upstream closes.</summary>
    public static UpstreamBody Open(UpstreamConnection connection, ResponseHead head, TimeSpan idleTimeout, CancellationToken aborted) => head.Framing switch
    {
        BodyFraming.None => SocketBody.For(connection, 0, idleTimeout, aborted),
        BodyFraming.ContentLength => SocketBody.For(connection, head.ContentLength, idleTimeout, aborted),
        BodyFraming.Chunked => new ChunkedBody(connection, idleTimeout, aborted),
        _ => SocketBody.For(connection, -1, idleTimeout, aborted),
    };

    /// <summary>True once the body was read to its exact end: the connection may carry another request.</summary>
    public abstract bool EndedCleanly { get; }

    /// <summary>A read that threw, by whose fault: the proxy's own timeout, the client leaving (the token), or the upstream.</summary>
    private protected SourceRead Failed(Exception e, CancellationToken cancellationToken) => e switch
    {
        _ when _reader is { TimedOut: true } => SourceRead.Failed(BodyOutcome.SourceTimedOut, $"the upstream sent nothing for {IdleTimeout.TotalMilliseconds:0} ms"),
        OperationCanceledException when cancellationToken.IsCancellationRequested => SourceRead.Failed(BodyOutcome.ClientFailed, "the request was aborted"),
        InvalidDataException => SourceRead.Failed(BodyOutcome.SourceMalformed, $"malformed upstream body: {e.Message}"),
        EndOfStreamException => SourceRead.Failed(BodyOutcome.SourceEnded, e.Message),
        _ => SourceRead.Failed(BodyOutcome.SourceFailed, $"upstream failed: {e.Message}"),
    };

    public override ValueTask DisposeAsync()
    {
        _reader?.Dispose();
        _reader = null;
        Connection.ReleasePrefetchedBody();
        return ValueTask.CompletedTask;
    }
}
