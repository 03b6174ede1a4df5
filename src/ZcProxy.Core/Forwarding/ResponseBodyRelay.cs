using System.Buffers;
using Microsoft.AspNetCore.Http;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;
using ZcProxy.Core.Upstream;

namespace ZcProxy.Core.Forwarding;

/// <summary>Outcome of moving a response body, and whose fault a failure was.</summary>
internal enum RelayOutcome { Complete, UpstreamFailed, UpstreamTimedOut, UpstreamMalformed, ClientFailed, TransportFailed }

/// <summary>
/// Moves an upstream response body to the client, choosing the mechanism once:
/// Content-Length ≥ SpliceThreshold with a splice-capable client connection → splice (upstream socket → pipe →
/// client socket, bytes never in user space); smaller Content-Length bodies → copy of exactly that many bytes;
/// chunked → decoded and copied (Kestrel re-frames it for the client); close-delimited → copied until EOF.
/// </summary>
internal sealed class ResponseBodyRelay(ProxyMetrics metrics)
{
    public async Task<(RelayOutcome Outcome, bool ExactlyConsumed, Exception? Error)> RelayAsync(
        HttpContext context, UpstreamConnection connection, ResponseHead head, long spliceThreshold, TimeSpan bodyIdle)
    {
        // Body bytes consumed with the head (see UpstreamConnection.PrefetchedBody) are sent first; the pooled buffer goes back afterwards.
        try { return await RelayCoreAsync(context, connection, head, spliceThreshold, bodyIdle); }
        finally { connection.ReleasePrefetchedBody(); }
    }

    private async Task<(RelayOutcome Outcome, bool ExactlyConsumed, Exception? Error)> RelayCoreAsync(
        HttpContext context, UpstreamConnection connection, ResponseHead head, long spliceThreshold, TimeSpan bodyIdle)
    {
        var aborted = context.RequestAborted;
        switch (head.Framing)
        {
            case BodyFraming.None:
                return (RelayOutcome.Complete, true, null);

            case BodyFraming.ContentLength:
                var zeroCopy = context.Features.Get<IZeroCopyResponseFeature>();
                // A prefetched prefix means the head reader was told this body is copied: splicing now would skip those bytes.
                if (head.ContentLength > 0 && head.ContentLength >= spliceThreshold && zeroCopy is { CanSplice: true } && connection.PrefetchedBody.IsEmpty)
                    return await SpliceAsync(context, zeroCopy, connection, head.ContentLength, bodyIdle);
                return await CopyAsync(context, connection, head.ContentLength, bodyIdle);

            case BodyFraming.Chunked:
            {
                using var source = new IdleTimeoutReader(connection.Stream, bodyIdle, aborted);
                var reader = new ChunkedBodyReader(source, connection.PrefetchedBody.Span);
                var body = context.Response.Body;
                bool clientFailed = false;
                try
                {
                    await reader.CopyToAsync(async (data, _) =>
                    {
                        try { await body.WriteAsync(data, aborted); }
                        catch { clientFailed = true; throw; }
                        metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Response, data.Length);
                    }, aborted);
                    return (RelayOutcome.Complete, reader.LeftoverBytes == 0, null);
                }
                catch (Exception e) { return (Classify(e, clientFailed, source.TimedOut, aborted), false, e); }
            }

            default: // close-delimited: never reusable
            {
                var (outcome, _, error) = await CopyAsync(context, connection, -1, bodyIdle);
                return (outcome, false, error);
            }
        }
    }

    private static async Task<(RelayOutcome, bool, Exception?)> SpliceAsync(HttpContext context, IZeroCopyResponseFeature zeroCopy, UpstreamConnection connection, long length, TimeSpan bodyIdle)
    {
        try
        {
            // The transport counts these bytes as mechanism="splice"; it bounds each wait by the body-idle timeout, as the copy path does.
            await zeroCopy.SpliceFromSocketAsync(connection.Socket, length, bodyIdle, context.RequestAborted);
            return (RelayOutcome.Complete, true, null);
        }
        catch (BodyTransferException e)
        {
            var outcome = e.Failure switch
            {
                BodyTransferFailure.SourceEnded or BodyTransferFailure.SourceFailed => RelayOutcome.UpstreamFailed,
                BodyTransferFailure.IdleTimeout => RelayOutcome.UpstreamTimedOut,
                BodyTransferFailure.GuardTripped => RelayOutcome.TransportFailed,
                BodyTransferFailure.ClientFailed => RelayOutcome.ClientFailed,
                _ => context.RequestAborted.IsCancellationRequested ? RelayOutcome.ClientFailed : RelayOutcome.UpstreamFailed,
            };
            return (outcome, false, e);
        }
        catch (Exception e)
        {
            return (context.RequestAborted.IsCancellationRequested ? RelayOutcome.ClientFailed : RelayOutcome.UpstreamFailed, false, e);
        }
    }

    /// <summary>Copies exactly <paramref name="length"/> bytes, or until EOF when it is -1.</summary>
    private async Task<(RelayOutcome Outcome, bool, Exception?)> CopyAsync(HttpContext context, UpstreamConnection connection, long length, TimeSpan bodyIdle)
    {
        var aborted = context.RequestAborted;
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        using var source = new IdleTimeoutReader(connection.Stream, bodyIdle, aborted);
        long remaining = length;
        bool clientFailed = false;
        try
        {
            // The head reader never prefetches past Content-Length, so the whole prefix belongs to this body.
            var prefix = connection.PrefetchedBody;
            if (!prefix.IsEmpty)
            {
                try { await context.Response.Body.WriteAsync(prefix, aborted); }
                catch { clientFailed = true; throw; }
                metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Response, prefix.Length);
                if (length >= 0) remaining -= prefix.Length;
            }
            while (length < 0 || remaining > 0)
            {
                int want = length < 0 ? buffer.Length : (int)Math.Min(buffer.Length, remaining);
                int n = await source.ReadAsync(buffer.AsMemory(0, want), aborted);
                if (n == 0)
                {
                    if (length < 0) return (RelayOutcome.Complete, false, null);
                    throw new EndOfStreamException($"upstream closed with {remaining} of {length} body bytes unsent");
                }
                try { await context.Response.Body.WriteAsync(buffer.AsMemory(0, n), aborted); }
                catch { clientFailed = true; throw; }
                metrics.AddBodyBytes(BodyMechanism.Copy, BodyDirection.Response, n);
                remaining -= n;
            }
            return (RelayOutcome.Complete, true, null);
        }
        catch (Exception e) { return (Classify(e, clientFailed, source.TimedOut, aborted), false, e); }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    private static RelayOutcome Classify(Exception e, bool clientFailed, bool timedOut, CancellationToken aborted)
    {
        if (clientFailed || aborted.IsCancellationRequested) return RelayOutcome.ClientFailed;
        if (timedOut) return RelayOutcome.UpstreamTimedOut;
        if (e is InvalidDataException) return RelayOutcome.UpstreamMalformed;
        return RelayOutcome.UpstreamFailed; // EOF before the promised length, reset, or any other read failure
    }
}
