using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using ZcProxy.Core.Caching;
using ZcProxy.Core.Output;
using ZcProxy.Native;

namespace ZcProxy.Core.Local;

/// <summary>
/// Serves a <see cref="StaticRoute"/>'s files the way the cache serves hits: validators (ETag and Last-Modified as nginx
/// writes them), client conditionals (304/412) and a single range (206/416) by the cache's own rules
/// (<see cref="ClientConditionals"/>, <see cref="RangeRequest"/>), the body through <see cref="FileRangeSending"/>
/// (sendfile from the page cache, O_DIRECT for big cold files) and <see cref="ResponseBodySender"/>. Nothing outside the
/// root can be served: the path is checked segment by segment (<see cref="StaticPath"/>), and the file actually opened
/// must lie below the root's real path (a symlink out of the root is refused with 403, nginx's
/// <c>disable_symlinks</c> answer). Errors are nginx's: 404 missing, 403 unreadable or a directory without its index,
/// 301 to "dir/" for a directory named without its slash, 405 for methods other than GET and HEAD.
/// </summary>
internal sealed partial class StaticFiles(FileRangeSending files, ResponseBodySender sender, BodyOutcomeReport report, ErrorPages pages, ILogger<StaticFiles> log)
{
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    public async Task ServeAsync(HttpContext context, StaticRoute route)
    {
        var request = context.Request;
        var response = context.Response;
        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method))
        {
            response.Headers.Allow = "GET, HEAD";
            await pages.WriteAsync(context, StatusCodes.Status405MethodNotAllowed, "static files answer GET and HEAD only");
            return;
        }
        var target = CacheKey.TargetOf(request);
        int q = target.IndexOf('?', StringComparison.Ordinal);
        var rawPath = q < 0 ? target : target[..q];
        var verdict = StaticPath.Resolve(rawPath, out var relative);
        if (verdict != StaticPath.Verdict.Ok)
        {
            await (verdict == StaticPath.Verdict.BadRequest
                ? pages.WriteAsync(context, StatusCodes.Status400BadRequest, "the path is not a file path (a '.' or '..' segment, NUL, bad encoding)")
                : pages.WriteAsync(context, StatusCodes.Status404NotFound, "no such file"));
            return;
        }

        var root = await RealRootAsync(route);
        var path = relative.Length == 0 ? (route.Root.Length == 0 ? "/" : route.Root) : $"{route.Root}/{relative}";
        var file = await OpenAsync(path, root);
        try
        {
            if (file.Status == 0 && file.Info.IsDirectory)
            {
                if (!rawPath.EndsWith('/'))
                {
                    response.StatusCode = StatusCodes.Status301MovedPermanently;
                    response.Headers.Location = rawPath + "/" + (q < 0 ? "" : target[q..]);
                    response.ContentLength = 0;
                    return;
                }
                file.Handle?.Dispose();
                file = await OpenAsync($"{path.TrimEnd('/')}/{route.Index}", root);
                if (file.Status == StatusCodes.Status404NotFound || (file.Status == 0 && file.Info.IsDirectory))
                    file = file with { Status = StatusCodes.Status403Forbidden, Why = $"the directory has no {route.Index} (no listing is served)" };
            }
            else if (file.Status == 0 && !file.Info.IsRegular)
                file = file with { Status = StatusCodes.Status403Forbidden, Why = "not a regular file" };
            if (file.Status != 0)
            {
                await pages.WriteAsync(context, file.Status, file.Why!);
                return;
            }
            await SendAsync(context, route, file);
        }
        finally { file.Handle?.Dispose(); }
    }

    private async Task SendAsync(HttpContext context, StaticRoute route, Opened file)
    {
        var request = context.Request;
        var response = context.Response;
        var info = file.Info;
        var lastModified = DateTimeOffset.FromUnixTimeSeconds(info.MtimeSeconds);
        // nginx's ETag: hex mtime and size.
        var etag = string.Create(CultureInfo.InvariantCulture, $"\"{info.MtimeSeconds:x}-{info.Size:x}\"");
        response.Headers.ETag = etag;
        response.Headers.LastModified = HttpDate.Format(lastModified);
        if (ClientConditionals.Evaluate(request, etag, lastModified, lastModified) is { } code)
        {
            response.StatusCode = code;
            if (code != StatusCodes.Status304NotModified) response.ContentLength = 0;
            return;
        }
        response.Headers.AcceptRanges = "bytes";
        response.ContentType = ContentTypes.TryGetContentType(file.RealPath, out var type) ? type : "application/octet-stream";
        var (outcome, start, length) = RangeRequest.Evaluate(request, info.Size, etag, lastModified);
        if (outcome == RangeRequest.Outcome.Unsatisfiable)
        {
            response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
            response.Headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes */{info.Size}");
            response.ContentLength = 0;
            return;
        }
        if (outcome == RangeRequest.Outcome.Partial)
        {
            response.StatusCode = StatusCodes.Status206PartialContent;
            response.Headers.ContentRange = string.Create(CultureInfo.InvariantCulture, $"bytes {start}-{start + length - 1}/{info.Size}");
        }
        response.ContentLength = length;
        if (HttpMethods.IsHead(request.Method) || length == 0) return;
        await using var source = files.Open(file.Handle!, file.RealPath, info.Size, start, length, info.Size, route.DirectIo);
        var result = await sender.SendAsync(context, source);
        if (!result.IsComplete) report.StaticBodyFailed(context, result, file.RealPath);
    }

    /// <summary>An opened file below the root: Status 0 and its handle, or the HTTP status and why not.</summary>
    private readonly record struct Opened(int Status, string? Why, SafeFileHandle? Handle, FileStatus Info, string RealPath);

    /// <remarks>
    /// The open follows <see cref="LoopFileIo"/>'s rule: on an event loop it runs inline only when the path resolves from
    /// the kernel's caches; one whose directory blocks or inode left memory is opened on the thread pool, so the loop's
    /// other connections do not wait for the disk.
    /// </remarks>
    private async ValueTask<Opened> OpenAsync(string path, string? realRoot)
    {
        if (realRoot is null) return new(StatusCodes.Status404NotFound, "the static root does not exist", null, default, "");
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused as not a regular file).
        var (errno, handle) = await LoopFileIo.OpenAsync(path, LinuxConstants.O_RDONLY | LinuxConstants.O_NONBLOCK);
        if (errno != 0)
        {
            return (Errno)errno switch
            {
                Errno.EACCES or Errno.EPERM => new(StatusCodes.Status403Forbidden, "permission denied", null, default, ""),
                _ => new(StatusCodes.Status404NotFound, "no such file", null, default, ""),
            };
        }
        var real = RealPathOf(handle!);
        bool inside = real is not null && (real == realRoot || real.StartsWith(realRoot == "/" ? "/" : realRoot + "/", StringComparison.Ordinal));
        var info = inside ? Syscalls.Status(handle!, out _) : null;
        if (info is null)
        {
            handle!.Dispose();
            if (!inside) LogOutsideRoot(log, path, real ?? "?", realRoot);
            return new(StatusCodes.Status403Forbidden, inside ? "the file cannot be examined" : "the file lies outside the static root", null, default, "");
        }
        return new(0, null, handle, info.Value, real!);
    }

    /// <summary>The root's real path (symlinks resolved), asked again at most once a second so a deploy that swaps a symlink is seen.</summary>
    private static async ValueTask<string?> RealRootAsync(StaticRoute route)
    {
        long now = Environment.TickCount64;
        var cached = route.CachedRealRoot;
        if (cached is not null && now - cached.At < 1000) return cached.Path;
        string? real = null;
        var (errno, handle) = await LoopFileIo.OpenReadAsync(route.Root.Length == 0 ? "/" : route.Root);
        if (errno == 0)
            using (handle) real = RealPathOf(handle!);
        route.CachedRealRoot = new ResolvedRoot(now, real);
        return real;
    }

    /// <summary>Where an open file really is: the kernel's own name for the fd (/proc/self/fd), after every symlink.</summary>
    private static string? RealPathOf(SafeFileHandle handle)
    {
        try { return new FileInfo($"/proc/self/fd/{handle.DangerousGetHandle()}").LinkTarget; }
        catch (IOException) { return null; }
    }

    [LoggerMessage(EventId = 11001, Level = LogLevel.Warning, Message = "static files: {Path} is {Real}, outside the root {Root}: refused (403)")]
    private static partial void LogOutsideRoot(ILogger logger, string path, string real, string root);
}
