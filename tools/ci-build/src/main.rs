fn main() {
    ci_build::main()
}
