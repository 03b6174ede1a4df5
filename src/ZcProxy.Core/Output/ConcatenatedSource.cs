using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;

namespace ZcProxy.Core.Output;

/// <summary>
/// One body made of several file ranges in order (a response assembled from cache slices): each part is sent the way
/// <see cref="FileRangeSending"/> chose for it (sendfile or O_DIRECT) and counts its own bytes. Owns its parts.
/// </summary>
internal sealed class ConcatenatedSource(IReadOnlyList<BodySource> parts) : BodySource
{
    private int _reading;

    public override long Length { get; } = parts.Sum(p => p.Length);

    /// <summary>
    /// A kernel move when every part has one that needs no splice pipe (sendfile, O_DIRECT sends). A file range moves with
    /// sendfile whatever its size (a small one offers no hole only as a whole body, see FileRangeSource.SendfileFrom).
    /// </summary>
    public override BodyMechanism? Hole => Length >= FileRangeSource.SendfileFrom
        && parts.All(p => p is FileRangeSource || (p.Hole is { } h && h != BodyMechanism.Splice)) ? BodyMechanism.Sendfile : null;

    public override BodyMechanism CopiedAs => parts.Count > 0 ? parts[0].CopiedAs : BodyMechanism.Copy;

    public override async ValueTask<SourceRead> ReadAsync(CancellationToken cancellationToken)
    {
        while (_reading < parts.Count)
        {
            var read = await parts[_reading].ReadAsync(cancellationToken);
            if (!read.IsEnd) return read;
            _reading++;
        }
        return SourceRead.End;
    }

    public override async ValueTask<BodyResult> MoveAsync(ZeroCopyConnection to, SplicePipe? pipe, CancellationToken cancellationToken)
    {
        foreach (var part in parts)
        {
            var result = await part.MoveAsync(to, null, cancellationToken);
            if (!result.IsComplete) return result;
        }
        return BodyResult.Complete;
    }

    public override async ValueTask DisposeAsync()
    {
        foreach (var part in parts) await part.DisposeAsync();
    }
}
