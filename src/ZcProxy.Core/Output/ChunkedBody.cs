using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Output;

/// <summary>
/// A chunked upstream body: decoded and copied (Kestrel frames it again for the client), never spliced, since the
/// framing has to be read. The connection is reusable only when nothing was read past the last chunk.
/// </summary>
internal sealed class ChunkedBody : UpstreamBody
{
    private readonly ChunkedBodyReader _decoder;
    private bool _ended;

    public ChunkedBody(UpstreamConnection connection, TimeSpan idleTimeout, CancellationToken aborted) : base(connection, idleTimeout, aborted)
        => _decoder = new ChunkedBodyReader(Reader, connection.PrefetchedBody.Span);

    public override long Length => -1;

    public override bool EndedCleanly => _ended && _decoder.LeftoverBytes == 0;

    public override async ValueTask<SourceRead> ReadAsync(CancellationToken cancellationToken)
    {
        ReadOnlyMemory<byte> data;
        try { data = await _decoder.ReadAsync(cancellationToken); }
        catch (Exception e) { return Failed(e, cancellationToken); }
        if (!data.IsEmpty) return SourceRead.Of(data);
        _ended = true;
        return SourceRead.End;
    }
}
