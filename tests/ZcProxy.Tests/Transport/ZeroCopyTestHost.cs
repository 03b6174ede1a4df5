using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ZcProxy.Core.Diagnostics;
using ZcProxy.Core.Transport;

namespace ZcProxy.Tests.Transport;

/// <summary>
/// A small Kestrel app on 127.0.0.1:0 with the zero-copy transport and responses:
///   /file?size=N          Response.SendFileAsync of an N-byte pattern file (Content-Length N)
///   /file-short?size=N&amp;promise=M  IZeroCopyResponseFeature.SendFileAsync promising M bytes of an N-byte file
///   /splice?size=N[&amp;send=M][&amp;end=Close|Reset|StayOpen][&amp;cancelAfterMs=T]  splice of N promised bytes from a
///                         socket source sending M, with a token cancelled after T ms
///   /status/{code}        a file body on a 204/304 (headers only)
///   /direct?size=N[&amp;offset=O][&amp;count=C][&amp;promise=P][&amp;started=true]  IZeroCopyResponseFeature.SendDirectIoAsync of
///                         C bytes (default N-O) from O of the N-byte file opened with O_DIRECT, promising P bytes
///                         (default C); started: after Response.StartAsync (no hole possible: the copy fallback)
///   /guard?size=N         opens a hole and advances one byte short: the guard must trip
///   POST /unread?expect=N reads no body; X-Kernel-Queued: bytes still in the socket's receive queue
///   /until-aborted        ends when RequestAborted fires (the client hung up while nothing was read)
/// The handlers record their outcome (exception or null) so tests can check the server side completed.
/// </summary>
internal sealed class ZeroCopyTestHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _directory;

    private ZeroCopyTestHost(WebApplication app, string directory, SocketSource source)
    {
        _app = app;
        _directory = directory;
        Source = source;
    }

    public SocketSource Source { get; }
    public Uri BaseAddress { get; private set; } = null!;
    public ProxyMetrics Metrics => _app.Services.GetRequiredService<ProxyMetrics>();
    public ZeroCopyTransport Transport => _app.Services.GetRequiredService<ZeroCopyTransport>();
    public ZcProxy.Core.Transport.Loops.EventLoops Loops => _app.Services.GetRequiredService<ZcProxy.Core.Transport.Loops.EventLoops>();
    /// <summary>Each handler's end: null when it completed normally, else its exception.</summary>
    public System.Collections.Concurrent.ConcurrentQueue<(string Path, Exception? Error)> Outcomes { get; } = new();
    /// <summary>Runs inside the splice handler once the upstream socket is connected (tests use it to act mid-body).</summary>
    public Func<HttpContext, Task>? BeforeBody { get; set; }

    public static async Task<ZeroCopyTestHost> StartAsync(Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols? protocols = null)
    {
        var directory = Directory.CreateTempSubdirectory("zc-transport-").FullName;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddZeroCopyTransport();
        builder.WebHost.ConfigureKestrel(k => k.ListenZeroCopy(IPAddress.Loopback, 0, lo =>
        {
            if (protocols is { } p) lo.Protocols = p;
        }));
        var app = builder.Build();
        var host = new ZeroCopyTestHost(app, directory, new SocketSource());
        app.UseZeroCopyResponses();
        app.MapGet("/file", host.FileAsync);
        app.MapGet("/file-short", host.FileShortAsync);
        app.MapGet("/splice", host.SpliceAsync);
        app.MapMethods("/status/{code:int}", ["GET", "HEAD"], host.StatusAsync);
        app.MapGet("/guard", host.GuardAsync);
        app.MapGet("/direct", host.DirectAsync);
        app.MapGet("/file-nolength", host.FileWithoutLengthAsync);
        app.MapGet("/file-started", host.FileAfterStartAsync);
        app.MapPost("/unread", host.UnreadAsync);
        app.MapGet("/until-aborted", host.UntilAbortedAsync);
        await app.StartAsync();
        host.BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return host;
    }

    public string PatternFile(long size)
    {
        var path = Path.Combine(_directory, $"body-{size}.bin");
        lock (_directory) if (!File.Exists(path)) BodyPattern.WriteFile(_directory, size);
        return path;
    }

    private Task FileAsync(HttpContext context, long size) => Record(context, async () =>
    {
        var path = PatternFile(size);
        context.Response.ContentLength = size;
        await context.Response.SendFileAsync(path, 0, size, context.RequestAborted);
    });

    /// <summary>No Content-Length: not eligible for sendfile, Kestrel's own SendFileAsync (chunked) serves it.</summary>
    private Task FileWithoutLengthAsync(HttpContext context, long size) => Record(context, async () =>
        await context.Response.SendFileAsync(PatternFile(size), 0, size, context.RequestAborted));

    /// <summary>The response already started: IZeroCopyResponseFeature copies (counted as copy) instead of a hole.</summary>
    private Task FileAfterStartAsync(HttpContext context, long size) => Record(context, async () =>
    {
        context.Response.ContentLength = size;
        await context.Response.StartAsync();
        var zeroCopy = context.Features.Get<IZeroCopyResponseFeature>()!;
        if (zeroCopy.CanSendFile) throw new InvalidOperationException("CanSendFile after the response started");
        using var file = File.OpenHandle(PatternFile(size));
        await zeroCopy.SendFileAsync(file, 0, size, context.RequestAborted);
    });

    private Task FileShortAsync(HttpContext context, long size, long promise) => Record(context, async () =>
    {
        using var file = File.OpenHandle(PatternFile(size));
        var zeroCopy = context.Features.Get<IZeroCopyResponseFeature>()!;
        await zeroCopy.SendFileAsync(file, 0, promise, context.RequestAborted);
    });

    private Task DirectAsync(HttpContext context, long size, long? offset, long? count, long? promise, bool? started) => Record(context, async () =>
    {
        using var file = ZcProxy.Native.Syscalls.Open(PatternFile(size), ZcProxy.Native.LinuxConstants.O_RDONLY | ZcProxy.Native.LinuxConstants.O_DIRECT);
        long from = offset ?? 0, length = promise ?? count ?? size - from;
        var zeroCopy = context.Features.Get<IZeroCopyResponseFeature>()!;
        if (started == true)
        {
            context.Response.ContentLength = length;
            await context.Response.StartAsync();
        }
        if (zeroCopy.CanSendFile == (started == true)) throw new InvalidOperationException($"CanSendFile is {zeroCopy.CanSendFile}");
        await zeroCopy.SendDirectIoAsync(file, from, length, context.RequestAborted);
    });

    private Task SpliceAsync(HttpContext context, long size, long? send, SocketSource.End? end, int? cancelAfterMs) => Record(context, async () =>
    {
        using var timeout = new CancellationTokenSource(cancelAfterMs ?? Timeout.Infinite); // a forwarder's body-idle timeout
        using var upstream = await Source.ConnectAsync(send ?? size, end ?? SocketSource.End.Close);
        var zeroCopy = context.Features.Get<IZeroCopyResponseFeature>()!;
        if (!zeroCopy.CanSplice) throw new InvalidOperationException("CanSplice is false on a plaintext HTTP/1.1 connection");
        if (BeforeBody is { } before) await before(context);
        await zeroCopy.SpliceFromSocketAsync(upstream, size, timeout.Token);
    });

    /// <summary>Reads nothing of the request body; answers how many bytes the kernel still holds for this connection.</summary>
    private Task UnreadAsync(HttpContext context, long expect) => Record(context, async () =>
    {
        var connection = context.Features.Get<ZeroCopyConnection>()!;
        int Queued()
        {
            using var lease = FdLease.TryAcquire(connection.ClientHandle, out var l) ? l : default;
            return ZcProxy.Native.Syscalls.BytesAvailable(lease.Fd);
        }
        // Bounded: the body may still be on its way through loopback.
        for (int i = 0; i < 200 && Queued() < expect - ZeroCopyTransport.BlockSize; i++) await Task.Delay(10);
        context.Response.Headers["X-Kernel-Queued"] = Queued().ToString(System.Globalization.CultureInfo.InvariantCulture);
        context.Response.Headers.Connection = "close";
    });

    /// <summary>Waits for RequestAborted (the client went away) without reading anything.</summary>
    private Task UntilAbortedAsync(HttpContext context) => Record(context, async () =>
    {
        var aborted = new TaskCompletionSource();
        using (context.RequestAborted.Register(() => aborted.TrySetResult()))
            await aborted.Task.WaitAsync(TimeSpan.FromSeconds(30));
    });

    private Task StatusAsync(HttpContext context, int code) => Record(context, async () =>
    {
        var path = PatternFile(1000);
        context.Response.StatusCode = code;
        if (code != 204) context.Response.ContentLength = 1000;
        await context.Response.SendFileAsync(path, 0, code == 204 ? null : 1000, context.RequestAborted);
    });

    private Task GuardAsync(HttpContext context, long size) => Record(context, async () =>
    {
        var connection = context.Features.Get<ZeroCopyConnection>()!;
        var file = File.OpenHandle(PatternFile(size));
        context.Response.ContentLength = size;
        await context.Response.StartAsync();
        connection.Output.BeginHole(new FileHoleSource(file, 0), size, context.RequestAborted);
        context.Response.BodyWriter.GetMemory();
        context.Response.BodyWriter.Advance((int)size - 1);
        await context.Response.BodyWriter.FlushAsync();
        var failure = connection.Output.EndHole();
        file.Dispose();
        if (failure is not null) throw failure;
    });

    private async Task Record(HttpContext context, Func<Task> handler)
    {
        try
        {
            await handler();
            Outcomes.Enqueue((context.Request.Path, null));
        }
        catch (Exception e)
        {
            Outcomes.Enqueue((context.Request.Path, e));
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.DisposeAsync();
        await Source.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }
}
