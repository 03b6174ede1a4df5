using ZcProxy.Core.Streams;

namespace ZcProxy.Core.Output;

/// <summary>
/// Reads from an upstream stream with a body-idle timeout: each read must make progress within the timeout
/// (time spent writing to the client does not count). <see cref="TimedOut"/> tells a timeout from a cancel.
/// </summary>
internal sealed class IdleTimeoutReader : ReadOnlyStream
{
    private readonly Stream _inner;
    private readonly TimeSpan _idle;
    private readonly CancellationToken _aborted;
    private readonly CancellationTokenSource _cts;

    public IdleTimeoutReader(Stream inner, TimeSpan idle, CancellationToken aborted)
    {
        _inner = inner;
        _idle = idle;
        _aborted = aborted;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(aborted);
    }

    public bool TimedOut => _cts.IsCancellationRequested && !_aborted.IsCancellationRequested;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _cts.CancelAfter(_idle);
        try { return await _inner.ReadAsync(buffer, _cts.Token); }
        finally { if (!_cts.IsCancellationRequested) _cts.CancelAfter(Timeout.InfiniteTimeSpan); }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _cts.Dispose(); // the inner stream belongs to the upstream connection
        base.Dispose(disposing);
    }
}
