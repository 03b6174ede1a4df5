using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// Cache.SliceSize (nginx's slice): a Range request fetches and stores only the aligned slices it needs (upstream
/// Range requests of one slice each) and is answered as a 206 from the slice files; the slices of one answer must agree
/// on the object's version; an origin without range support gets the normal path.
/// </summary>
public sealed class CacheSliceTests
{
    private const int Slice = 64 << 10;
    private const string Sliced = "\"SliceSize\": \"64KiB\"";
    private static readonly int Size = 5 * Slice - 4321; // five slices, the last one partial

    /// <summary>An origin with range support whose body and ETag the test may swap; it records the Range of every request.</summary>
    private sealed class RangedOrigin
    {
        public byte[] Body = CacheRig.RandomBody(Size, 51);
        public string ETag = "\"v1\"";
        public bool SupportsRanges = true;
        public readonly System.Collections.Concurrent.ConcurrentQueue<string> Ranges = new();

        public Action<WebApplication> Endpoints => app => app.MapGet("/obj", (HttpContext c) =>
        {
            Ranges.Enqueue(c.Request.Headers.Range.ToString());
            c.Response.Headers.CacheControl = "max-age=600";
            return Results.Bytes(Body, "application/octet-stream", enableRangeProcessing: SupportsRanges,
                entityTag: new EntityTagHeaderValue(ETag));
        });
    }

    private static string Sha(byte[] body, long from, long count) => Convert.ToHexString(SHA256.HashData(body.AsSpan((int)from, (int)count)));

    private static async Task<HttpResponseMessage> RangeAsync(CacheRig rig, string range)
        => await rig.SendAsync("/obj", r => r.Headers.TryAddWithoutValidation("Range", range));


    private static string SliceRange(int index) => $"bytes={index * Slice}-{(index + 1) * Slice - 1}";

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RangeAcrossSliceBoundaries_FetchesOnlyItsSlices_206ShaExact_ThenHit(bool zeroCopy)
    {
        var origin = new RangedOrigin();
        await using var rig = await CacheRig.StartAsync(origin.Endpoints, Sliced, zeroCopy: zeroCopy);
        long from = Slice - 1000, to = 2 * Slice + 5000; // the end of slice 0, all of slice 1, the start of slice 2
        var miss = await RangeAsync(rig, $"bytes={from}-{to}");
        Assert.Equal(206, (int)miss.StatusCode);
        Assert.Equal($"bytes {from}-{to}/{Size}", miss.Content.Headers.ContentRange?.ToString());
        Assert.Equal(Sha(origin.Body, from, to - from + 1), CacheRig.Sha256(await miss.Content.ReadAsByteArrayAsync()));
        Assert.Equal("MISS", CacheRig.CacheStatusOf(miss));
        Assert.Equal([SliceRange(0), SliceRange(1), SliceRange(2)], origin.Ranges);

        var hit = await RangeAsync(rig, $"bytes={from}-{to}");
        Assert.Equal(("HIT", Sha(origin.Body, from, to - from + 1)), (CacheRig.CacheStatusOf(hit), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync())));
        Assert.Equal(3, rig.Origin.Requests);
        // Slices are fetched like a background refresh (YARP's forwarder, no client waiting on the bytes); the answer goes
        // out from the slice files by sendfile on the zero-copy transport, copied on Kestrel's.
        Assert.True(await rig.MetricAsync($"zcproxy_body_bytes_total{{mechanism=\"{(zeroCopy ? "sendfile" : "copy")}\",direction=\"response\"}}") >= 2 * (to - from + 1),
            "both answers were sent from the slice files");
    }

    [Fact]
    public async Task FirstAndLastPartialSlices_SuffixAndOpenRanges_ShaExact()
    {
        var origin = new RangedOrigin();
        await using var rig = await CacheRig.StartAsync(origin.Endpoints, Sliced);
        foreach (var (range, from, count) in new (string, long, long)[]
        {
            ("bytes=0-99", 0, 100), // a part of the first slice
            ("bytes=-1000", Size - 1000, 1000), // suffix: a part of the last (short) slice
            ($"bytes={4 * Slice + 10}-", 4 * Slice + 10, Size - 4 * Slice - 10), // open-ended, inside the last slice
            ($"bytes={Size - 1}-{Size + 500}", Size - 1, 1), // the last byte; the end past the object is cut
        })
        {
            var response = await RangeAsync(rig, range);
            Assert.Equal(206, (int)response.StatusCode);
            Assert.Equal($"bytes {from}-{from + count - 1}/{Size}", response.Content.Headers.ContentRange?.ToString());
            Assert.Equal(Sha(origin.Body, from, count), CacheRig.Sha256(await response.Content.ReadAsByteArrayAsync()));
        }
        Assert.Equal([SliceRange(0), SliceRange(4)], origin.Ranges);
        Assert.Equal(2, rig.Origin.Requests);
    }

    [Fact]
    public async Task UnsatisfiableRange_416WithTheLength()
    {
        var origin = new RangedOrigin();
        await using var rig = await CacheRig.StartAsync(origin.Endpoints, Sliced);
        var past = await RangeAsync(rig, $"bytes={10 * Slice}-"); // a slice past the end: the origin's 416 tells the length
        Assert.Equal(416, (int)past.StatusCode);
        Assert.Equal($"bytes */{Size}", past.Content.Headers.ContentRange?.ToString());
        await RangeAsync(rig, "bytes=0-0");
        var known = await RangeAsync(rig, $"bytes={Size}-"); // inside slice 4, past the end: the stored length tells
        Assert.Equal(416, (int)known.StatusCode);
        Assert.Equal($"bytes */{Size}", known.Content.Headers.ContentRange?.ToString());
        var again = await rig.SendAsync("/nocache/x"); // the proxy and its connections go on
        Assert.NotEqual(500, (int)again.StatusCode);
    }

    [Fact]
    public async Task OriginWithoutRangeSupport_NormalCaching_FullBody()
    {
        var origin = new RangedOrigin { SupportsRanges = false };
        await using var rig = await CacheRig.StartAsync(origin.Endpoints, Sliced);
        var first = await RangeAsync(rig, "bytes=100-200");
        // The slice's Range got a 200: no slices; the request went the normal way, the origin's 200 is passed on and stored.
        Assert.Equal(200, (int)first.StatusCode);
        Assert.Equal(CacheRig.Sha256(origin.Body), CacheRig.Sha256(await first.Content.ReadAsByteArrayAsync()));
        var hit = await rig.SendAsync("/obj");
        Assert.Equal(("HIT", CacheRig.Sha256(origin.Body)), (CacheRig.CacheStatusOf(hit), CacheRig.Sha256(await hit.Content.ReadAsByteArrayAsync())));
        var ranged = await RangeAsync(rig, "bytes=100-200"); // now a complete entry serves the range
        Assert.Equal(("HIT", Sha(origin.Body, 100, 101)), (CacheRig.CacheStatusOf(ranged), CacheRig.Sha256(await ranged.Content.ReadAsByteArrayAsync())));
        Assert.Equal(2, rig.Origin.Requests); // the slice's try and the normal fetch; the stored whole answers the rest
    }

    [Fact]
    public async Task ObjectChangesBetweenSlices_SlicesDropped_AnswerIsAllNewVersion()
    {
        var origin = new RangedOrigin();
        await using var rig = await CacheRig.StartAsync(origin.Endpoints, Sliced);
        await RangeAsync(rig, "bytes=0-99"); // slice 0 of v1 stored
        origin.Body = CacheRig.RandomBody(Size, 52);
        origin.ETag = "\"v2\"";
        long from = Slice - 10, to = Slice + 10; // slice 0 (stored, v1) and slice 1 (fetched now: v2)
        var response = await RangeAsync(rig, $"bytes={from}-{to}");
        Assert.Equal(206, (int)response.StatusCode);
        Assert.Equal(Sha(origin.Body, from, to - from + 1), CacheRig.Sha256(await response.Content.ReadAsByteArrayAsync()));
        Assert.Equal("\"v2\"", response.Headers.ETag?.ToString());
        // slice 0 (v1), slice 1 (v2: disagrees), then both again.
        Assert.Equal([SliceRange(0), SliceRange(1), SliceRange(0), SliceRange(1)], origin.Ranges);
    }

    [Fact]
    public async Task FullGet_FromSlices_WhenAllAreStored_ElseFetchedNormally()
    {
        var origin = new RangedOrigin();
        await using var rig = await CacheRig.StartAsync(origin.Endpoints, Sliced);
        await RangeAsync(rig, "bytes=0-99");
        var partial = await rig.SendAsync("/obj"); // slices 1-4 missing: the normal path
        Assert.Equal(("MISS", CacheRig.Sha256(origin.Body)), (CacheRig.CacheStatusOf(partial), CacheRig.Sha256(await partial.Content.ReadAsByteArrayAsync())));
        Assert.Equal(2, rig.Origin.Requests);

        origin.ETag = "\"v1\""; // unchanged
        await using var rig2 = await CacheRig.StartAsync(origin.Endpoints, Sliced);
        await RangeAsync(rig2, "bytes=0-"); // every slice stored
        Assert.Equal(5, rig2.Origin.Requests);
        var full = await rig2.SendAsync("/obj");
        Assert.Equal(200, (int)full.StatusCode);
        Assert.Null(full.Content.Headers.ContentRange);
        Assert.Equal(("HIT", CacheRig.Sha256(origin.Body)), (CacheRig.CacheStatusOf(full), CacheRig.Sha256(await full.Content.ReadAsByteArrayAsync())));
        Assert.Equal(5, rig2.Origin.Requests);
    }
}
