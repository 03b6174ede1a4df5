using System.Runtime.CompilerServices;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using ZcProxy.Core.Configuration;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Transport.Loops;

namespace ZcProxy.Core.Output;

/// <summary>
/// The one place a response body is sent, deciding once per body, as nginx's output chain does per buffer:
/// a kernel move ("hole": sendfile, splice, direct I/O) when the source offers one, the connection is a zero-copy
/// one, the response is framed by the source's Content-Length and not yet started, a socket body is at least
/// ZeroCopy.SpliceThreshold long and a splice pipe can be leased, and no wrapper of the body needs to see the bytes
/// (<see cref="IResponseBodyObserver"/>), or the one that does only writes them to a file (a cache fill) and the
/// source can tee a splice into it (a second pipe leased for the client's copy). Otherwise the one copy loop here
/// moves it through the response body feature. Either way exactly the source's bytes reach the client or the result
/// says whose failure stopped them, and a response whose head went out is then aborted: a truncated body never passes
/// for a complete one.
/// </summary>
internal sealed class ResponseBodySender(RuntimeOptions options, ProxyMetrics metrics)
{
    // Not async itself: a copied body (every small one) costs the copy loop's state machine only. A ValueTask: a small body's copy completes at once, and then allocates nothing.
    public ValueTask<BodyResult> SendAsync(HttpContext context, BodySource source)
    {
        if (CarriesNoBody(context)) return ValueTask.FromResult(BodyResult.Complete);
        if (context.Find<ZeroCopyResponse>() is { } zeroCopy && source.Hole is { } hole && MayMoveInKernel(context, zeroCopy, source, hole, out var sink))
        {
            var pipes = zeroCopy.Connection.Shared.Pipes;
            var pipe = hole == BodyMechanism.Splice ? pipes.TryLease() : null;
            var teePipe = sink is not null && pipe is not null ? pipes.TryLease() : null;
            if (sink is not null && teePipe is null && pipe is not null)
            {
                pipes.Return(pipe, transferComplete: true); // unused: a fill without its second pipe is copied
                pipe = null;
            }
            if (hole != BodyMechanism.Splice || pipe is not null) return MoveInKernelAsync(zeroCopy, source, pipe, teePipe, sink);
        }
        return CopyAsync(context, source);
    }

    /// <summary>
    /// The hole: a kernel move of the whole body (teeing into the sink's file when there is one); the leased pipes go back
    /// after. Without an async frame when the hole completes at once (most spliced 64 KiB bodies).
    /// </summary>
    private static ValueTask<BodyResult> MoveInKernelAsync(ZeroCopyResponse zeroCopy, BodySource source, SplicePipe? pipe, SplicePipe? teePipe, IBodyFileSink? sink)
    {
        var move = KernelMove.Rent(source, zeroCopy.Connection, pipe, teePipe, sink);
        ValueTask<BodyResult> sending;
        BodyResult result;
        try
        {
            // A teeing move writes the lead into its file too, so it keeps it.
            var lead = teePipe is null ? source.TakeLead() : default;
            sending = zeroCopy.SendHoleAsync(move.Run, source.Length, lead);
            if (!sending.IsCompleted) return AfterHoleAsync(sending, zeroCopy, move, pipe, teePipe);
            result = sending.GetAwaiter().GetResult();
        }
        catch
        {
            AfterHole(zeroCopy, move, pipe, teePipe, complete: false);
            throw;
        }
        AfterHole(zeroCopy, move, pipe, teePipe, result.IsComplete);
        return new ValueTask<BodyResult>(result);
    }

    [AsyncMethodBuilder(typeof(FramePoolBuilder<>))] // suspended for the whole move: a pooled frame, not a box per body
    private static async ValueTask<BodyResult> AfterHoleAsync(ValueTask<BodyResult> sending, ZeroCopyResponse zeroCopy, KernelMove move, SplicePipe? pipe, SplicePipe? teePipe)
    {
        var result = BodyResult.Failed(BodyOutcome.TransportFailed, "the hole did not run");
        try { result = await sending; }
        finally { AfterHole(zeroCopy, move, pipe, teePipe, result.IsComplete); }
        return result;
    }

    /// <summary>The move goes back to its pool, the pipes to the connection's (a failed splice may leave bytes in a pipe: those are closed, not reused).</summary>
    private static void AfterHole(ZeroCopyResponse zeroCopy, KernelMove move, SplicePipe? pipe, SplicePipe? teePipe, bool complete)
    {
        var pipes = zeroCopy.Connection.Shared.Pipes;
        move.Return();
        if (pipe is not null) pipes.Return(pipe, complete);
        if (teePipe is not null) pipes.Return(teePipe, complete);
    }

    /// <summary>True for a socket body too short to be worth a splice (a pipe and two calls per pipeful): it is copied whatever else holds.</summary>
    private bool AlwaysCopies(long socketBodyLength) => socketBodyLength < options.Current.ZeroCopy.SpliceThreshold;

    /// <summary>HEAD, 204 and 304 responses carry no body: their head is all there is.</summary>
    private static bool CarriesNoBody(HttpContext context)
        => HttpMethods.IsHead(context.Request.Method) || context.Response.StatusCode is StatusCodes.Status204NoContent or StatusCodes.Status304NotModified;

    private bool MayMoveInKernel(HttpContext context, ZeroCopyResponse zeroCopy, BodySource source, BodyMechanism hole, out IBodyFileSink? sink)
    {
        sink = null;
        long length = source.Length;
        // The threshold first: it is a comparison, CanTakeHole parses the response's Content-Length (every small body asked it).
        if (length <= 0 || hole == BodyMechanism.Splice && AlwaysCopies(length) || !zeroCopy.CanTakeHole(length)) return false;
        return NobodyNeedsTheBytes(context, zeroCopy.KestrelBody, out sink) && (sink is null || source.CanTee);
    }

    /// <summary>
    /// True when no wrapper between the response and Kestrel needs the bytes, or exactly one needs them only to write
    /// them to a file (<paramref name="sink"/>, which a teeing move serves).
    /// </summary>
    private static bool NobodyNeedsTheBytes(HttpContext context, IHttpResponseBodyFeature kestrelBody, out IBodyFileSink? sink)
    {
        sink = null;
        for (var feature = context.Find<IHttpResponseBodyFeature>(); !ReferenceEquals(feature, kestrelBody);)
        {
            if (feature is not IResponseBodyObserver observer) return false;
            if (observer.NeedsBytes)
            {
                if (sink is not null || observer.FileSink is not { } fileSink) return false;
                sink = fileSink;
            }
            feature = observer.Inner;
        }
        return true;
    }

    /// <summary>
    /// The copy loop: source reads into the response body feature (through any wrappers), counted as the source says.
    /// The response starts with the first bytes, so a source that fails before any leaves the status to be decided.
    /// </summary>
    private async ValueTask<BodyResult> CopyAsync(HttpContext context, BodySource source)
    {
        var aborted = context.RequestAborted;
        var body = context.Response.Body;
        var mechanism = source.CopiedAs;
        while (true)
        {
            var read = await source.ReadAsync(aborted);
            if (read.IsEnd) return BodyResult.Complete;
            if (!read.Result.IsComplete) return Failed(context, aborted.IsCancellationRequested ? BodyResult.Failed(BodyOutcome.ClientFailed, "the request was aborted") : read.Result);
            try { await body.WriteAsync(read.Data, aborted); }
            catch (Exception e) { return Failed(context, BodyResult.Failed(BodyOutcome.ClientFailed, $"writing to the client failed: {e.Message}")); }
            // Kestrel's writes after the connection went away complete without an error: the aborted token tells.
            if (aborted.IsCancellationRequested) return Failed(context, BodyResult.Failed(BodyOutcome.ClientFailed, "the client connection was aborted"));
            metrics.AddBodyBytes(mechanism, BodyDirection.Response, read.Data.Length);
        }
    }

    private static BodyResult Failed(HttpContext context, BodyResult result)
    {
        if (context.Response.HasStarted) context.Abort();
        return result;
    }
}
