using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace ZcProxy.Core.Caching;

/// <summary>
/// Slice storage (Cache.SliceSize, nginx's <c>slice</c> module): a Range request is answered from aligned slices of the
/// object, each fetched from the origin with a Range of its own and stored as a cache entry (<see cref="SliceRange"/>),
/// so a Range in the middle of a 4 GiB file fetches a few slices, not the file. The slices of one answer must agree on
/// the object's length, ETag and Last-Modified; a slice that does not (the object changed between fetches) drops all
/// of them and they are fetched again, once. A full GET is answered from slices only when all are stored. Anything
/// slices do not serve goes the normal way: several ranges, If-Range and conditionals, an origin that answers a slice's
/// Range with a 200 (no range support), a slice it will not let be stored.
/// </summary>
internal sealed partial class CacheStep
{
    private enum SliceFetch { Stored, Unsatisfiable, NotServed }

    /// <summary>True when the request was answered from slices (or with a 416); false: the normal path answers it.</summary>
    private async Task<bool> TryAnswerFromSlicesAsync(HttpContext context, string key, long sliceSize)
    {
        var request = context.Request;
        if (!HttpMethods.IsGet(request.Method) || AsksMoreThanBytes(request)) return false;
        // The whole object is stored (its origin had no range support, or it was fetched whole): that entry answers.
        if (cache.Index.Candidates(key, static (vary, request) => StoredHead.VaryMatches(vary, request), request).Count > 0) return false;
        var rangeHeader = request.Headers.Range.ToString();
        bool ranged = rangeHeader.Length > 0;
        long? firstByte = null;
        if (ranged && !SliceRange.TryFirstByte(rangeHeader, out firstByte)) return false;
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var opened = new List<OpenEntry>();
            try
            {
                bool fetched = false;
                // The slice holding the first byte asked for (slice 0 for a suffix range or a full GET) tells the length.
                long firstIndex = firstByte is { } b ? b / sliceSize : 0;
                var (first, outcome, total416) = await SliceAsync(context, key, firstIndex, sliceSize, mayFetch: ranged);
                if (outcome == SliceFetch.Unsatisfiable && total416 is { } known)
                {
                    await UnsatisfiableAsync(context, known);
                    return true;
                }
                if (first is null) return false;
                fetched |= outcome == SliceFetch.Stored;
                opened.Add(first);
                var identity = SliceRange.Of(first.Response)!.Value;
                var (kind, start, length) = ranged
                    ? RangeRequest.Evaluate(request, identity.Total, null, null)
                    : (RangeRequest.Outcome.Full, 0L, identity.Total);
                if (kind == RangeRequest.Outcome.Unsatisfiable)
                {
                    await UnsatisfiableAsync(context, identity.Total);
                    return true;
                }
                bool partial = kind == RangeRequest.Outcome.Partial;
                if (!partial && ranged) return false; // a range slices do not serve
                if (length == 0) return false;
                long from = start / sliceSize, to = (start + length - 1) / sliceSize;
                if (from != firstIndex)
                {
                    // A suffix range: the first slice needed is not the one that told the length.
                    opened[0].Dispose();
                    opened.Clear();
                }
                bool consistent = true;
                for (long i = from; i <= to; i++)
                {
                    if (i == firstIndex && opened.Count > 0) continue;
                    var (slice, got, _) = await SliceAsync(context, key, i, sliceSize, mayFetch: ranged);
                    if (slice is null) return false;
                    fetched |= got == SliceFetch.Stored;
                    opened.Add(slice);
                    if (SliceRange.Of(slice.Response) != identity) consistent = false;
                }
                if (!consistent)
                {
                    // The object changed between the fetches of its slices: none of them is served, all are dropped.
                    long longest = opened.Max(s => SliceRange.Of(s.Response)?.Total ?? 0);
                    int removed = 0;
                    for (long i = 0; i * sliceSize < Math.Max(longest, identity.Total); i++) removed += cache.Invalidate(SliceRange.KeyOf(key, i));
                    LogSlicesChanged(key, removed);
                    if (!ranged) return false;
                    continue;
                }
                var age = opened.Max(s => Freshness.CurrentAge(s.Response, cache.Time.GetUtcNow()));
                await writer.WriteSlicesAsync(context, opened, sliceSize, identity.Total, start, length, partial, fetched ? CacheStatus.Miss : CacheStatus.Hit, age);
                return true;
            }
            finally
            {
                foreach (var slice in opened) slice.Dispose();
            }
        }
        return false;
    }

    /// <summary>Conditionals, If-Range and request cache directives: the normal path's business.</summary>
    private static bool AsksMoreThanBytes(HttpRequest request)
        => request.Headers.CacheControl.Count > 0 || request.Headers.Pragma.Count > 0 || request.Headers.IfRange.Count > 0 || request.Headers.IfNoneMatch.Count > 0 || request.Headers.IfModifiedSince.Count > 0
           || request.Headers.IfMatch.Count > 0 || request.Headers.IfUnmodifiedSince.Count > 0;

    private static Task UnsatisfiableAsync(HttpContext context, long total)
    {
        context.Response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
        context.Response.Headers.ContentRange = $"bytes */{total.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        context.Response.ContentLength = 0;
        SetStatus(context, CacheStatus.Miss);
        return Task.CompletedTask;
    }

    /// <summary>
    /// Slice <paramref name="index"/>: the fresh stored one, or (when <paramref name="mayFetch"/>) fetched from the origin
    /// under the slice's cache lock and stored. Null entry when there is none to serve; the origin's 416 says the slice
    /// starts past the end (with the total it gave).
    /// </summary>
    private async Task<(OpenEntry? Entry, SliceFetch Outcome, long? Total)> SliceAsync(HttpContext context, string key, long index, long sliceSize, bool mayFetch)
    {
        var sliceKey = SliceRange.KeyOf(key, index);
        if (await FreshSliceAsync(context, sliceKey) is { } stored) return (stored, SliceFetch.NotServed, null);
        if (!mayFetch) return (null, SliceFetch.NotServed, null);
        var running = cache.Lock.TryAcquire(sliceKey);
        if (running is not null)
        {
            await cache.Lock.WaitAsync(running, cache.Options.LockTimeout, context.RequestAborted);
            return (await FreshSliceAsync(context, sliceKey), SliceFetch.NotServed, null);
        }
        bool storedNow = false;
        try
        {
            var (outcome, total) = await FetchSliceAsync(context, sliceKey, index, sliceSize);
            storedNow = outcome == SliceFetch.Stored;
            if (!storedNow) return (null, outcome, total);
        }
        finally { cache.Lock.Release(sliceKey, storedNow); }
        return (await FreshSliceAsync(context, sliceKey), SliceFetch.Stored, null);
    }

    private async Task<OpenEntry?> FreshSliceAsync(HttpContext context, string sliceKey)
    {
        var entry = await LookupAsync(sliceKey, context.Request);
        if (entry is null) return null;
        var stored = entry.Response;
        var ignored = CacheIgnoreHeaders.ForRoute(context);
        bool fresh = Freshness.Lifetime(stored, CacheValid.ForRoute(context).For(StatusCodes.Status200OK), ignored) > Freshness.CurrentAge(stored, cache.Time.GetUtcNow());
        if (fresh && SliceRange.Of(stored) is not null && CacheControl.ForResponse(stored, ignored) is { NoCache: false }) return entry;
        entry.Dispose(); // stale or in need of validation: fetched again
        return null;
    }

    /// <summary>One upstream request for one slice (Range: its bytes), its 206 stored as the slice's entry; the body goes nowhere else.</summary>
    private async Task<(SliceFetch, long?)> FetchSliceAsync(HttpContext context, string sliceKey, long index, long sliceSize)
    {
        var proxy = context.Features.Get<IReverseProxyFeature>();
        if (proxy is null) return (SliceFetch.NotServed, null);
        var destinations = proxy.AvailableDestinations.Count > 0 ? proxy.AvailableDestinations : proxy.AllDestinations;
        if (destinations.Count == 0) return (SliceFetch.NotServed, null);
        var destination = destinations[Random.Shared.Next(destinations.Count)];
        var fetch = CopyRequest(context, proxy);
        fetch.Request.Headers.Range = SliceRange.RequestHeader(index, sliceSize);
        var requestTime = cache.Time.GetUtcNow();
        var outcome = SliceFetch.NotServed;
        long? total = null;
        var interceptor = await ForwardInterceptedAsync(fetch, async () =>
        {
            await forwarder.SendAsync(fetch, destination.Model.Config.Address, proxy.Cluster.HttpClient,
                proxy.Cluster.Config.HttpRequest ?? ForwarderRequestConfig.Empty, proxy.Route.Transformer);
        }, ctx =>
        {
            var response = ctx.Response;
            if (response.StatusCode == StatusCodes.Status416RangeNotSatisfiable)
            {
                outcome = SliceFetch.Unsatisfiable;
                total = SliceRange.UnsatisfiedTotal(response.Headers.ContentRange);
                return (InterceptMode.Pass, null);
            }
            var range = SliceRange.ParseContentRange(response.Headers.ContentRange);
            long first = index * sliceSize;
            if (response.StatusCode != StatusCodes.Status206PartialContent || range is not { } r || r.First != first
                || r.Last != Math.Min(first + sliceSize, r.Total) - 1 || response.ContentLength != r.Last - r.First + 1)
                return (InterceptMode.Pass, null); // no range support (a 200), or not the slice asked for: the normal path
            // Stored as a part of the object's 200: the same rules, with the slice's own Content-Range kept aside.
            var contentRange = response.Headers.ContentRange;
            response.Headers.Remove("Content-Range");
            var why = Storability.WhyNot(ctx.Request, StatusCodes.Status200OK, response.Headers, cache.Options.Statuses,
                CacheIgnoreHeaders.ForRoute(context), CacheValid.ForRoute(context).For(StatusCodes.Status200OK) is not null);
            response.Headers.ContentRange = contentRange;
            if (why is not null || response.ContentLength > cache.Options.MaxEntrySize || !cache.HasFreeSpace(response.ContentLength ?? 0))
            {
                LogNotStored(sliceKey, why ?? "too large or no free space");
                return (InterceptMode.Pass, null);
            }
            var head = StoredHead.From(ctx, sliceKey, requestTime, cache.Time.GetUtcNow(), response.ContentLength ?? 0, CacheIgnoreHeaders.StoresCookies(context));
            var fill = CacheFill.Start(cache, head, response.ContentLength);
            return fill is null ? (InterceptMode.Pass, null) : (InterceptMode.Fill, fill);
        });
        return interceptor.Fill?.Committed == true ? (SliceFetch.Stored, null) : (outcome, total);
    }

    [Microsoft.Extensions.Logging.LoggerMessage(EventId = 4015, Level = Microsoft.Extensions.Logging.LogLevel.Information,
        Message = "the slices of {Key} disagree (length, ETag or Last-Modified changed): {Count} slices dropped")]
    private partial void LogSlicesChanged(string key, int count);
}
