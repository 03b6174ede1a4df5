using ZcProxy.Core.Output;
using ZcProxy.Core.Streams;
using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// Holds back a response whose status will be retried (RetryOn statuses): when the forwarder starts the response
/// or writes its first body byte, the gate looks at the status; if another try will follow, everything is
/// discarded and nothing reaches the client, otherwise the gate steps aside for good. A held-back response must not be
/// moved in the kernel past the gate: as an <see cref="IResponseBodyObserver"/> it tells the body sender so, on the
/// status, which the forwarder has set before the body is sent.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA1001",
    Justification = "The gate stream only forwards to the response's own body stream, which Kestrel disposes")]
internal sealed class ResponseHeadGate : IHttpResponseBodyFeature, IResponseBodyObserver
{
    private enum Decision { Undecided, PassThrough, Discard }

    private readonly IHttpResponseBodyFeature _inner;
    private readonly HttpContext _context;
    private readonly Func<int, bool> _willRetry;
    private readonly GateStream _stream;
    private PipeWriter? _discardWriter;
    private Decision _decision;

    public ResponseHeadGate(IHttpResponseBodyFeature inner, HttpContext context, Func<int, bool> willRetry)
    {
        _inner = inner;
        _context = context;
        _willRetry = willRetry;
        _stream = new GateStream(this);
    }

    public bool Discarded => _decision == Decision.Discard;

    /// <summary>Before the next try: decide afresh on its response.</summary>
    public void Reset() => _decision = Decision.Undecided;

    /// <summary>Decides on the current status if not yet decided for this try; true while the response is held back.</summary>
    private bool Discarding()
    {
        if (_decision == Decision.Undecided)
            _decision = _willRetry(_context.Response.StatusCode) ? Decision.Discard : Decision.PassThrough;
        return _decision == Decision.Discard;
    }

    IHttpResponseBodyFeature IResponseBodyObserver.Inner => _inner;
    bool IResponseBodyObserver.NeedsBytes => Discarding();

    public Stream Stream => _decision == Decision.PassThrough ? _inner.Stream : _stream;
    public PipeWriter Writer => Discarding() ? _discardWriter ??= PipeWriter.Create(Stream.Null) : _inner.Writer;
    public void DisableBuffering() => _inner.DisableBuffering();
    public Task StartAsync(CancellationToken cancellationToken = default) => Discarding() ? Task.CompletedTask : _inner.StartAsync(cancellationToken);
    public Task CompleteAsync() => Discarding() ? Task.CompletedTask : _inner.CompleteAsync();

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
        => Discarding() ? Task.CompletedTask : _inner.SendFileAsync(path, offset, count, cancellationToken);

    private sealed class GateStream(ResponseHeadGate gate) : WriteOnlyStream
    {

        public override void Flush() { if (!gate.Discarding()) gate._inner.Stream.Flush(); }
        public override Task FlushAsync(CancellationToken cancellationToken) => gate.Discarding() ? Task.CompletedTask : gate._inner.Stream.FlushAsync(cancellationToken);
        public override void Write(byte[] buffer, int offset, int count) { if (!gate.Discarding()) gate._inner.Stream.Write(buffer, offset, count); }
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => gate.Discarding() ? Task.CompletedTask : gate._inner.Stream.WriteAsync(buffer, offset, count, cancellationToken);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            => gate.Discarding() ? ValueTask.CompletedTask : gate._inner.Stream.WriteAsync(buffer, cancellationToken);
    }
}
