FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY geo geo
COPY agencies agencies
COPY coordinator coordinator
RUN pip install --no-cache-dir '.[postgres,redis]'
ENV CP_HOST=0.0.0.0 CP_PORT=8000 CP_DATA_DIR=/data
EXPOSE 8000
CMD ["commandpost", "serve"]
