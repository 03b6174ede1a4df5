namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// Wraps a request or response body stream and counts the bytes that pass through it as mechanism="copy".
/// Used where bytes move through user space without our own accounting (YARP's forwarder), so that
/// zcproxy_body_bytes_total tells the whole story on both forwarding paths.
/// </summary>
/// <param name="request">For a request body: the request whose <see cref="RequestBodyCount"/> the bytes also go to.</param>
internal sealed class CountingBodyStream(Stream inner, ProxyMetrics metrics, BodyDirection direction, Microsoft.AspNetCore.Http.HttpContext? request = null) : Stream
{
    public override bool CanRead => inner.CanRead;
    // Seekable when the inner stream is: retries rewind a buffered request body through this wrapper.
    public override bool CanSeek => inner.CanSeek;
    public override bool CanWrite => inner.CanWrite;
    public override long Length => inner.Length;
    public override long Position { get => inner.Position; set => inner.Position = value; }

    public override int Read(byte[] buffer, int offset, int count) => Counted(inner.Read(buffer, offset, count));
    public override int Read(Span<byte> buffer) => Counted(inner.Read(buffer));
    public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        Counted(await inner.ReadAsync(buffer.AsMemory(offset, count), cancellationToken));
    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        Counted(await inner.ReadAsync(buffer, cancellationToken));

    public override void Write(byte[] buffer, int offset, int count) { inner.Write(buffer, offset, count); Counted(count); }
    public override void Write(ReadOnlySpan<byte> buffer) { inner.Write(buffer); Counted(buffer.Length); }
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await inner.WriteAsync(buffer, cancellationToken);
        Counted(buffer.Length);
    }

    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
    public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
    public override void SetLength(long value) => throw new NotSupportedException();

    private int Counted(int bytes)
    {
        if (bytes > 0)
        {
            metrics.AddBodyBytes(BodyMechanism.Copy, direction, bytes);
            if (request is not null) RequestBodyCount.Of(request).Add(bytes);
        }
        return bytes;
    }
}
