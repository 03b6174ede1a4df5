using Xunit.Abstractions;
using ZcProxy.Core.Upstream;
using BodyPattern = ZcProxy.Tests.Infrastructure.BodyPattern;
using Poll = ZcProxy.Tests.Infrastructure.Poll;
using RawHttpClient = ZcProxy.Tests.Transport.RawHttpClient;

namespace ZcProxy.Tests.Proof;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class StraceProofCollection
{
    public const string Name = "strace proof (alone: tracing slows every thread of the proxy)";
}

/// <summary>
/// The zero-copy claim checked from outside, on the real zcproxy process: strace attached to it counts which
/// system calls carried the body bytes. The metrics say what the proxy believes; strace says what the kernel did.
/// </summary>
[Collection(StraceProofCollection.Name)]
public sealed class StraceProofTests(ProofRig rig, ITestOutputHelper output) : IClassFixture<ProofRig>
{
    private const string Syscalls = "sendfile,splice,tee,read,write,readv,writev,sendmsg,recvmsg,recvfrom,sendto,pread64,pwrite64,openat";

    /// <summary>Calls that move bytes through user space; each successful return value is a byte count.</summary>
    private static readonly HashSet<string> CopyingCalls = ["read", "write", "readv", "writev", "sendmsg", "recvmsg", "recvfrom", "sendto", "pread64", "pwrite64"];

    private bool ToClient(string fdArgument) => StraceLog.IsSocketWithLocalPort(fdArgument, rig.ProxyUrl.Port);

    /// <summary>Bytes through user space, leaving out the admin connection that polls /metrics inside the window.</summary>
    private long UserSpaceBytes(StraceLog log)
        => log.BytesOf(c => CopyingCalls.Contains(c.Name) && !StraceLog.IsSocketWithLocalPort(c.Argument(0), new Uri(rig.AdminUrl).Port));

    /// <summary>An openat with the O_DIRECT flag (not O_DIRECTORY).</summary>
    private static bool IsDirectOpen(string arguments) => System.Text.RegularExpressions.Regex.IsMatch(arguments, @"\bO_DIRECT\b");

    private void Report(string what, StraceLog log)
    {
        output.WriteLine($"strace -f -C -yy -e trace={Syscalls} -p {rig.Proxy.Pid} ({what}):");
        output.WriteLine(log.Summary);
    }

    [StraceFact]
    public async Task UncachedRoute_256MiB_IsSplicedToTheClient_UserSpaceBytesTiny_ThenKeepAliveReuse()
    {
        long spliceBefore = await rig.BodyBytesAsync("splice"), copyBefore = await rig.BodyBytesAsync("copy");
        using var client = await RawHttpClient.ConnectAsync(rig.ProxyUrl);
        using var strace = await StraceSession.AttachAsync(rig.Proxy.Pid, Syscalls);

        await client.SendAsync(RawHttpClient.Get("/plain/huge"));
        var response = await client.ReadResponseAsync();
        long counted = await rig.BodyBytesReachingAsync(["splice", "copy"], spliceBefore + copyBefore + ProofRig.HugeBody);
        long spliced = await rig.BodyBytesAsync("splice") - spliceBefore, copied = await rig.BodyBytesAsync("copy") - copyBefore;
        var log = await strace.StopAsync();
        Report("256 MiB through /plain/huge", log);

        Assert.Equal(200, response.Status);
        Assert.Equal(ProofRig.HugeBody, response.BodyLength);
        Assert.Equal(BodyPattern.Sha256(ProofRig.HugeBody), response.Sha);
        Assert.Equal(spliceBefore + copyBefore + ProofRig.HugeBody, counted);
        Assert.True(log.CallsOf("splice") > 0, "the -c table shows splice calls");
        // splice(pipe, NULL, client socket, ...) return values: the body bytes the kernel moved to the client. The only
        // others are those that came with the head in its one recv (at most HeadReadSize), sent with the response head
        // in its one gathered sendmsg.
        long splicedToClient = log.BytesOf(c => c.Name == "splice" && ToClient(c.Argument(2)));
        long headBytes = System.Text.Encoding.ASCII.GetByteCount(client.LastHead) + 4; // and its blank line
        long sentAhead = log.BytesOf(c => c.Name is "sendmsg" or "sendto" && ToClient(c.Argument(0))) - headBytes;
        Assert.Equal(1, log.Calls.Count(c => c.Result > 0 && c.Name is "sendmsg" or "sendto" && ToClient(c.Argument(0)))); // head and prefix together
        output.WriteLine($"spliced to the client: {splicedToClient} bytes; sent ahead of the splice (came with the head): {sentAhead} bytes");
        Assert.InRange(splicedToClient, ProofRig.HugeBody - UpstreamConnection.HeadReadSize, ProofRig.HugeBody);
        Assert.Equal(ProofRig.HugeBody, splicedToClient + sentAhead);
        Assert.Equal((splicedToClient, sentAhead), (spliced, copied)); // the counters say what the kernel did
        long userSpace = UserSpaceBytes(log);
        output.WriteLine($"read/write/sendmsg/recvfrom/...: {userSpace} bytes");
        Assert.True(userSpace < ProofRig.HugeBody / 1024, $"{userSpace} bytes went through user space, expected well under 256 KiB");
        Assert.Equal(0, log.BytesOf(c => c.Name == "sendfile"));

        await client.SendAsync(RawHttpClient.Get("/plain/small"));
        var second = await client.ReadResponseAsync();
        Assert.Equal(200, second.Status);
        Assert.Equal(BodyPattern.Sha256(ProofRig.SmallBody), second.Sha);
    }

    /// <summary>
    /// Keep-alive requests for a 64 KiB body (spliced but for what came with its head) cost one recv each on the upstream
    /// socket: a body spliced to its exact length leaves the connection known drained, so the next head read waits for the
    /// upstream's data instead of trying a recv that can only find nothing (the origin answers after a pause, so the data is
    /// never there yet when the request has just gone out).
    /// </summary>
    [StraceFact]
    public async Task UncachedRoute_64KiB_KeepAlive_OneUpstreamRecvPerResponse_NoneFindsNothing()
    {
        const int requests = 4;
        string sha = BodyPattern.Sha256(ProofRig.MediumBody);
        using var client = await RawHttpClient.ConnectAsync(rig.ProxyUrl);
        await client.SendAsync(RawHttpClient.Get("/plain/medium"));
        Assert.Equal(sha, (await client.ReadResponseAsync()).Sha); // an upstream connection in the pool, its last body spliced
        long spliceBefore = await rig.BodyBytesAsync("splice");
        StraceLog log;
        using (var strace = await StraceSession.AttachAsync(rig.Proxy.Pid, Syscalls))
        {
            for (int i = 0; i < requests; i++)
            {
                await client.SendAsync(RawHttpClient.Get("/plain/medium"));
                var response = await client.ReadResponseAsync();
                Assert.Equal((200, ProofRig.MediumBody, sha), (response.Status, response.BodyLength, response.Sha));
            }
            log = await strace.StopAsync();
        }
        Report($"{requests} keep-alive requests for 64 KiB through /plain/medium", log);

        var upstreamReads = log.Calls.Where(c => c.Name is "recvfrom" or "recvmsg" or "read" && StraceLog.IsSocketWithRemotePort(c.Argument(0), rig.OriginPort)).ToList();
        output.WriteLine($"upstream reads: {string.Join("; ", upstreamReads.Select(c => $"{c.Name} = {c.Result}"))}");
        Assert.True(log.BytesOf(c => c.Name == "splice" && ToClient(c.Argument(2))) > 0, "the bodies were spliced");
        Assert.True(await rig.BodyBytesAsync("splice") > spliceBefore);
        Assert.DoesNotContain(upstreamReads, c => c.Result < 0); // no recv that found the socket empty (EAGAIN)
        Assert.Equal(requests, upstreamReads.Count); // each head (and the body bytes with it) in one recv
    }

    /// <summary>
    /// A 256 MiB MISS on a cached route is spliced to the client and teed into the entry's temp file in the kernel
    /// (tee(2) of the splice pipe, splice(2) of the original into the file): strace sees the whole body in splice
    /// calls to the client socket and to the cache file, and almost nothing in read/write/recv/send. The next request
    /// on the same keep-alive connection is a byte-exact HIT from that entry.
    /// </summary>
    [StraceFact]
    public async Task CacheMiss_256MiB_TeedIntoTheEntryInTheKernel_UserSpaceBytesTiny_ThenHitOnTheSameConnection()
    {
        long spliceBefore = await rig.BodyBytesAsync("splice"), copyBefore = await rig.BodyBytesAsync("copy");
        long fillSplicedBefore = await rig.FillBytesAsync("splice");
        long fillCopiedBefore = await rig.FillBytesAsync("copy");
        using var client = await RawHttpClient.ConnectAsync(rig.ProxyUrl);
        StraceLog log;
        using (var strace = await StraceSession.AttachAsync(rig.Proxy.Pid, Syscalls))
        {
            await client.SendAsync(RawHttpClient.Get("/cached/huge"));
            var miss = await client.ReadResponseAsync();
            Assert.Equal((200, ProofRig.HugeBody, BodyPattern.Sha256(ProofRig.HugeBody)), (miss.Status, miss.BodyLength, miss.Sha));
            Assert.Contains("X-Cache-Status: MISS", client.LastHead, StringComparison.OrdinalIgnoreCase);
            await rig.BodyBytesReachingAsync("splice", spliceBefore + ProofRig.HugeBody - UpstreamConnection.HeadReadSize);
            log = await strace.StopAsync();
        }
        Report("256 MiB cache MISS through /cached/huge", log);
        await Caching.CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, ProofRig.HugeBody);

        long splicedToClient = log.BytesOf(c => c.Name == "splice" && ToClient(c.Argument(2)));
        // splice(pipe, NULL, entry temp file (decorated with its cache path), [offset], ...): what the kernel wrote to the entry.
        long splicedToEntry = log.BytesOf(c => c.Name == "splice" && c.Argument(2).Contains(rig.CachePath, StringComparison.Ordinal));
        long userSpace = UserSpaceBytes(log);
        output.WriteLine($"spliced to the client: {splicedToClient}; spliced into the entry: {splicedToEntry}; read/write/sendmsg/recvfrom/...: {userSpace} bytes");
        Assert.True(log.CallsOf("tee") > 0, "the -c table shows tee calls");
        // The body bytes that came along with the upstream head's one recv (at most HeadReadSize) are in user space
        // already: they are sent and written to the entry from there (counted as copy); every other byte is spliced.
        long copiedToClient = await rig.BodyBytesAsync("copy") - copyBefore, copiedIntoEntry = await rig.FillBytesAsync("copy") - fillCopiedBefore;
        Assert.InRange(copiedToClient, 0, UpstreamConnection.HeadReadSize);
        Assert.Equal(ProofRig.HugeBody, splicedToClient + copiedToClient);
        Assert.Equal(ProofRig.HugeBody, splicedToEntry + copiedIntoEntry);
        Assert.Equal(copiedToClient, copiedIntoEntry);
        Assert.Equal(splicedToEntry, await rig.FillBytesAsync("splice") - fillSplicedBefore);
        Assert.True(userSpace < ProofRig.HugeBody / 1024, $"{userSpace} bytes went through user space, expected well under 256 KiB");

        await client.SendAsync(RawHttpClient.Get("/cached/huge"));
        var hit = await client.ReadResponseAsync();
        Assert.Equal((200, ProofRig.HugeBody, BodyPattern.Sha256(ProofRig.HugeBody)), (hit.Status, hit.BodyLength, hit.Sha));
        Assert.Contains("X-Cache-Status: HIT", client.LastHead, StringComparison.OrdinalIgnoreCase);
        await client.SendAsync(RawHttpClient.Get("/plain/small"));
        Assert.Equal(BodyPattern.Sha256(ProofRig.SmallBody), (await client.ReadResponseAsync()).Sha);
    }

    [StraceFact]
    public async Task CacheHit_BelowDirectIoThreshold_IsSentWithSendfile()
    {
        using var client = await RawHttpClient.ConnectAsync(rig.ProxyUrl);
        await client.SendAsync(RawHttpClient.Get("/cached/small"));
        Assert.Equal(BodyPattern.Sha256(ProofRig.CachedSmall), (await client.ReadResponseAsync()).Sha); // MISS fills the cache
        long sendfileBefore = await rig.BodyBytesAsync("sendfile");
        using var strace = await StraceSession.AttachAsync(rig.Proxy.Pid, Syscalls);

        await client.SendAsync(RawHttpClient.Get("/cached/small"));
        var hit = await client.ReadResponseAsync();
        long sendfileAfter = await rig.BodyBytesReachingAsync("sendfile", sendfileBefore + ProofRig.CachedSmall);
        var log = await strace.StopAsync();
        Report("cache hit, 200000 bytes", log);

        Assert.Equal(200, hit.Status);
        Assert.Equal(BodyPattern.Sha256(ProofRig.CachedSmall), hit.Sha);
        Assert.Equal(sendfileBefore + ProofRig.CachedSmall, sendfileAfter);
        Assert.True(log.CallsOf("sendfile") > 0, "the -c table shows sendfile calls");
        // sendfile(client socket, entry file, ...) return values: the body bytes the kernel moved from the page cache.
        Assert.Equal(ProofRig.CachedSmall, log.BytesOf(c => c.Name == "sendfile" && ToClient(c.Argument(0))));
        Assert.True(UserSpaceBytes(log) < ProofRig.CachedSmall / 10, "the body did not also pass through user space");
    }

    /// <summary>
    /// A 1 KiB hit (below FileRangeSource.SendfileFrom): the body is read once (preadv2 from the page cache) and leaves
    /// with the head in one write, instead of a head write, a page-cache probe and a sendfile.
    /// </summary>
    [StraceFact]
    public async Task CacheHit_1KiB_OneReadOfTheBody_OneWriteOfHeadAndBody_NoSendfile()
    {
        using var client = await RawHttpClient.ConnectAsync(rig.ProxyUrl);
        await client.SendAsync(RawHttpClient.Get("/cached/tiny"));
        Assert.Equal(BodyPattern.Sha256(ProofRig.CachedTiny), (await client.ReadResponseAsync()).Sha); // MISS fills the cache
        await Poll.UntilAsync(async () =>
        {
            await client.SendAsync(RawHttpClient.Get("/cached/tiny"));
            var warm = await client.ReadResponseAsync();
            return warm.Sha == BodyPattern.Sha256(ProofRig.CachedTiny) && client.LastHead.Contains("X-Cache-Status: HIT", StringComparison.OrdinalIgnoreCase);
        }, "the tiny entry to be committed and hit");
        using var strace = await StraceSession.AttachAsync(rig.Proxy.Pid, Syscalls + ",preadv2");

        await client.SendAsync(RawHttpClient.Get("/cached/tiny"));
        var hit = await client.ReadResponseAsync();
        var log = await strace.StopAsync(recorded: l => l.Calls.Any(c => c.Name is "write" or "writev" or "sendmsg" or "sendto" && ToClient(c.Argument(0))));
        Report("cache hit, 1024 bytes", log);

        Assert.Equal(200, hit.Status);
        Assert.Equal(BodyPattern.Sha256(ProofRig.CachedTiny), hit.Sha);
        Assert.Equal(0, log.CallsOf("sendfile"));
        var toClient = log.Calls.Where(c => c.Name is "write" or "writev" or "sendmsg" or "sendto" && ToClient(c.Argument(0))).ToList();
        var written = Assert.Single(toClient); // head and body together
        Assert.True(written.Result > ProofRig.CachedTiny, $"one write of head and body: {written.Result} bytes");
        var bodyReads = log.Calls.Where(c => c.Name is "preadv2" or "pread64" or "read" && c.Argument(0).Contains(rig.CachePath)).ToList();
        Assert.Equal(ProofRig.CachedTiny, Assert.Single(bodyReads, c => c.Result == ProofRig.CachedTiny).Result);
        Assert.DoesNotContain(bodyReads, c => c.Name != "preadv2" && c.Result == ProofRig.CachedTiny);
    }

    /// <summary>
    /// Cache.DirectIo "residency" (the default): the same entry above DirectIoThreshold goes out with sendfile while it is
    /// in the page cache (right after its fill) and is read with O_DIRECT once it is not (after posix_fadvise(DONTNEED)).
    /// </summary>
    [StraceFact]
    public async Task CacheHit_AboveDirectIoThreshold_HotBySendfile_ColdReadWithODirect()
    {
        using var client = await RawHttpClient.ConnectAsync(rig.ProxyUrl);
        await client.SendAsync(RawHttpClient.Get("/cached/large"));
        Assert.Equal(BodyPattern.Sha256(ProofRig.CachedLarge), (await client.ReadResponseAsync()).Sha); // MISS fills the cache
        var entry = await Caching.CacheDirectIoTests.CommittedEntryAsync(rig.CachePath, ProofRig.CachedLarge);

        // Hot: the fill left the entry in the page cache.
        long sendfileBefore = await rig.BodyBytesAsync("sendfile");
        StraceLog hotLog;
        using (var strace = await StraceSession.AttachAsync(rig.Proxy.Pid, Syscalls))
        {
            await client.SendAsync(RawHttpClient.Get("/cached/large"));
            var hot = await client.ReadResponseAsync();
            Assert.Equal(BodyPattern.Sha256(ProofRig.CachedLarge), hot.Sha);
            Assert.Equal(sendfileBefore + ProofRig.CachedLarge, await rig.BodyBytesReachingAsync("sendfile", sendfileBefore + ProofRig.CachedLarge));
            hotLog = await strace.StopAsync();
        }
        Report("hot cache hit, 3 MiB", hotLog);
        Assert.Equal(ProofRig.CachedLarge, hotLog.BytesOf(c => c.Name == "sendfile" && ToClient(c.Argument(0))));
        Assert.Empty(hotLog.Calls.Where(c => c.Name == "openat" && IsDirectOpen(c.Arguments)).Select(c => c.Arguments));
        Assert.True(UserSpaceBytes(hotLog) < ProofRig.CachedLarge / 10, "the hot body did not also pass through user space");

        // Cold: the same entry after its pages were dropped.
        await Caching.CacheDirectIoTests.MakeColdAsync(entry);
        long directBefore = await rig.BodyBytesAsync("directio");
        StraceLog log;
        using (var strace = await StraceSession.AttachAsync(rig.Proxy.Pid, Syscalls))
        {
            await client.SendAsync(RawHttpClient.Get("/cached/large"));
            var cold = await client.ReadResponseAsync();
            Assert.Equal(200, cold.Status);
            Assert.Equal(BodyPattern.Sha256(ProofRig.CachedLarge), cold.Sha);
            Assert.Equal(directBefore + ProofRig.CachedLarge, await rig.BodyBytesReachingAsync("directio", directBefore + ProofRig.CachedLarge));
            log = await strace.StopAsync();
        }
        Report("cold cache hit, 3 MiB", log);
        var opens = log.Calls.Where(c => c.Name == "openat" && c.Result >= 0 && c.Arguments.Contains(rig.CachePath) && IsDirectOpen(c.Arguments)).ToList();
        Assert.NotEmpty(opens);
        // The entry file (fd decorated with its cache path) is read with pread64 at least the body length.
        Assert.True(log.BytesOf(c => c.Name == "pread64" && c.Argument(0).Contains(rig.CachePath)) >= ProofRig.CachedLarge);
        Assert.Equal(0, log.BytesOf(c => c.Name == "sendfile"));
        // Sent with send(2) (sendto) straight from the aligned buffers to the client; the gathered sendmsg of Kestrel's
        // pipe carries only the head: the body is not copied into the pipe on the way.
        long sentFromBuffers = log.BytesOf(c => c.Name == "sendto" && ToClient(c.Argument(0)));
        long sentFromPipe = log.BytesOf(c => c.Name == "sendmsg" && ToClient(c.Argument(0)));
        output.WriteLine($"sendto from the aligned buffers: {sentFromBuffers} bytes; sendmsg (Kestrel's pipe): {sentFromPipe} bytes");
        Assert.Equal(ProofRig.CachedLarge, sentFromBuffers);
        Assert.True(sentFromPipe < 4096, $"{sentFromPipe} bytes through Kestrel's pipe: more than a response head");
    }

    /// <summary>A static file (1 MiB, below the default 4 MiB DirectIoThreshold) goes out with sendfile from the page cache.</summary>
    [StraceFact]
    public async Task StaticFile_IsSentWithSendfile_ThenKeepAliveReuse()
    {
        using var client = await RawHttpClient.ConnectAsync(rig.ProxyUrl);
        long sendfileBefore = await rig.BodyBytesAsync("sendfile");
        StraceLog log;
        using (var strace = await StraceSession.AttachAsync(rig.Proxy.Pid, Syscalls))
        {
            await client.SendAsync(RawHttpClient.Get("/static/file.bin"));
            var response = await client.ReadResponseAsync();
            Assert.Equal(200, response.Status);
            Assert.Equal(ProofRig.StaticFile, response.BodyLength);
            Assert.Equal(BodyPattern.Sha256(ProofRig.StaticFile), response.Sha);
            Assert.Equal(sendfileBefore + ProofRig.StaticFile, await rig.BodyBytesReachingAsync("sendfile", sendfileBefore + ProofRig.StaticFile));
            log = await strace.StopAsync();
        }
        Report("static file, 1 MiB", log);
        // sendfile(client socket, the file under the static root, ...) return values: the body bytes the kernel moved.
        Assert.Equal(ProofRig.StaticFile, log.BytesOf(c => c.Name == "sendfile" && ToClient(c.Argument(0)) && c.Argument(1).Contains(rig.StaticRoot)));
        Assert.True(UserSpaceBytes(log) < ProofRig.StaticFile / 10, "the body did not also pass through user space");

        await client.SendAsync(RawHttpClient.Get("/static/file.bin", "HEAD"));
        var head = await client.ReadResponseAsync(bodyExpected: false);
        Assert.Equal(200, head.Status);
        Assert.Equal(ProofRig.StaticFile, head.ContentLength);
        await client.SendAsync(RawHttpClient.Get("/plain/small"));
        Assert.Equal(BodyPattern.Sha256(ProofRig.SmallBody), (await client.ReadResponseAsync()).Sha);
    }
}
