using Pipeline.StreamEdge;

var builder = WebApplication.CreateBuilder(args);
builder.AddStreamEdge();

var app = builder.Build();
app.MapStreamEdge();
app.Run();
