using System.Net.Http;
using System.Net.Sockets;
using System.Runtime.CompilerServices;

namespace ZcProxy.Core.Forwarding;

/// <summary>
/// An HTTP/1.x connection of YARP's HttpClient (SocketsHttpHandler's plaintext stream: above TLS, so discarded bytes
/// are never encrypted). When a write of a request forwarded with an <see cref="EarlyResponseBody"/> fails because
/// the upstream stopped reading (reset, broken pipe), the failure is not passed on: this write and every later one are
/// discarded and the body is told, so HttpClient goes on to read the response the upstream sent before it closed.
/// Reads are untouched: a connection the upstream closed reads its end, and SocketsHttpHandler never reuses it.
/// Any other failure, or one outside such a request (HTTP/2 connections are not wrapped), is thrown as before.
/// </summary>
internal sealed class EarlyResponseConnectionStream(Stream inner) : Stream
{
    private bool _discarding;

    /// <summary>SocketsHttpHandler.PlaintextStreamFilter: wraps HTTP/1.x connections only.</summary>
    public static ValueTask<Stream> FilterAsync(SocketsHttpPlaintextStreamFilterContext context, CancellationToken cancellationToken)
        => ValueTask.FromResult(context.NegotiatedHttpVersion.Major == 1 ? new EarlyResponseConnectionStream(context.PlaintextStream) : context.PlaintextStream);

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_discarding) return ValueTask.CompletedTask;
        var write = inner.WriteAsync(buffer, cancellationToken);
        return write.IsCompletedSuccessfully ? write : AwaitWriteAsync(write);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask AwaitWriteAsync(ValueTask write)
    {
        try { await write; }
        catch (IOException e) when (TryDiscardFrom(e)) { }
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (_discarding) return;
        try { inner.Write(buffer); }
        catch (IOException e) when (TryDiscardFrom(e)) { }
    }

    /// <summary>The upstream stopped reading during a request that can still read its answer: discard from now on.</summary>
    private bool TryDiscardFrom(IOException e)
    {
        if (!UpstreamStoppedReading(e) || EarlyResponseBody.Current is not { } body) return false;
        _discarding = true;
        body.UpstreamStoppedReading();
        return true;
    }

    /// <summary>A reset (the upstream closed with the upload unread) or a broken pipe (it shut down reading).</summary>
    internal static bool UpstreamStoppedReading(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
            if (x is SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted })
                return true;
        return false;
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => _discarding ? Task.CompletedTask : inner.FlushAsync(cancellationToken);
    public override void Flush() { if (!_discarding) inner.Flush(); }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);
    public override int Read(Span<byte> buffer) => inner.Read(buffer);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override bool CanRead => true;
    public override bool CanWrite => true;
    public override bool CanSeek => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync();
        await base.DisposeAsync();
    }
}
